-- Schema 8: a message's payload may be expunged (Svix's expunge-content): it is then `{}`,
-- and the message is never sent again.
ALTER TABLE messages ADD COLUMN expunged INTEGER NOT NULL DEFAULT 0;
