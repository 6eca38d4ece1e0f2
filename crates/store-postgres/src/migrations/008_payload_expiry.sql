-- Schema 8: a payload may expire before the message (Svix's payloadRetentionPeriod);
-- the index holds only messages whose publisher asked.
ALTER TABLE messages ADD COLUMN payload_expires_at BIGINT;
CREATE INDEX messages_payload_expiry ON messages (payload_expires_at) WHERE payload_expires_at IS NOT NULL AND NOT expunged;
