-- Schema 7: an event type may enforce its schema on publish (EventType::enforce_schema).
-- Event types made before enforce nothing, as before.
ALTER TABLE event_types ADD COLUMN enforce_schema INTEGER NOT NULL DEFAULT 0;
