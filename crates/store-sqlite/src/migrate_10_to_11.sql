-- Schema 11: a payload may expire before the message (Svix's payloadRetentionPeriod).
ALTER TABLE messages ADD COLUMN payload_expires_at INTEGER;
CREATE INDEX IF NOT EXISTS messages_payload_expiry ON messages (payload_expires_at) WHERE payload_expires_at IS NOT NULL AND expunged = 0;
