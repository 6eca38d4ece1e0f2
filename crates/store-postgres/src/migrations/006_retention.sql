-- Schema 6: retention keeps a message while a message whose previous snapshot it holds
-- is pending; that is looked up by previous_id (only messages about entities have one).
CREATE INDEX messages_previous ON messages (app_id, previous_id) WHERE previous_id IS NOT NULL;
