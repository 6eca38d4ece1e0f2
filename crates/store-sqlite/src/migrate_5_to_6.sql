-- Schema 6: what an application token may do (model::Capabilities, as bits). Tokens
-- minted before could do everything within their application, and still can.
ALTER TABLE tokens ADD COLUMN capabilities INTEGER NOT NULL DEFAULT 63;
