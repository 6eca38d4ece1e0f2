-- Schema 10: the trace a message's attempts continue (a W3C traceparent), if any.
ALTER TABLE messages ADD COLUMN traceparent TEXT;
