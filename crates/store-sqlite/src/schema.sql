-- The embedded store's schema. Times are Unix milliseconds; JSON columns hold text.
CREATE TABLE IF NOT EXISTS applications (
    id TEXT PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    rate_limit INTEGER,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_types (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    archived INTEGER NOT NULL,
    deprecated INTEGER NOT NULL,
    feature_flag TEXT,
    group_name TEXT,
    schemas TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    enforce_schema INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    rate_limit INTEGER,
    disabled INTEGER NOT NULL,
    filter_types TEXT,
    channels TEXT,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    secret TEXT NOT NULL,
    retired_secrets TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    filter TEXT,
    name TEXT,
    transform TEXT,
    method TEXT NOT NULL DEFAULT 'POST',
    envelope TEXT NOT NULL DEFAULT 'raw',
    party TEXT,
    payload_mode TEXT NOT NULL DEFAULT 'full',
    diff_keep TEXT,
    -- Grows with every write: updates are compare-and-set on it.
    revision INTEGER NOT NULL DEFAULT 1,
    UNIQUE (app_id, uid)
);
CREATE INDEX IF NOT EXISTS endpoints_app ON endpoints (app_id, id);
-- Messages are a rowid table (their payloads are large) looked up through (app_id, id):
-- ids are unique, and an index on the id alone would be one more B-tree to update on
-- every publish.
CREATE TABLE IF NOT EXISTS messages (
    id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    event_id TEXT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    channels TEXT,
    tags TEXT,
    created_at INTEGER NOT NULL,
    origin TEXT,
    entity_type TEXT,
    entity_id TEXT,
    entity_deleted INTEGER NOT NULL DEFAULT 0,
    -- The message whose payload was the entity's snapshot when this one was accepted
    -- (its payload is not copied: an entity's updates would store each payload twice).
    previous_id TEXT,
    expunged INTEGER NOT NULL DEFAULT 0,
    -- The W3C traceparent the message's attempts continue (`Message::traceparent`).
    traceparent TEXT,
    -- When the payload is expunged (the publisher's payloadRetentionPeriod), if set.
    payload_expires_at INTEGER
);
-- `expunged`: the message's payload was expunged; it is `{}`, and the message is never
-- sent again.
CREATE UNIQUE INDEX IF NOT EXISTS messages_app ON messages (app_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;
-- Retention keeps a message while one whose previous snapshot it holds is pending.
CREATE INDEX IF NOT EXISTS messages_previous ON messages (app_id, previous_id) WHERE previous_id IS NOT NULL;
-- Payloads to expunge at their time; only messages whose publisher asked are in it.
CREATE INDEX IF NOT EXISTS messages_payload_expiry ON messages (payload_expires_at) WHERE payload_expires_at IS NOT NULL AND expunged = 0;
-- Each entity's snapshot: the last message published about it (its payload is the
-- snapshot); entity_type is '' when none was given.
CREATE TABLE IF NOT EXISTS entities (
    app_id TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, entity_type, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_updated ON entities (updated_at);
-- Endpoints failing continuously since failing_since (cleared by a success).
CREATE TABLE IF NOT EXISTS failing_endpoints (
    endpoint_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    failing_since INTEGER NOT NULL
);
-- Settings every node shares (the admin token's digest).
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Application-scoped API tokens: only a SHA-256 digest of each token is kept, with what
-- the token may do (capabilities: model::Capabilities, as bits).
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    capabilities INTEGER NOT NULL DEFAULT 63
);
CREATE INDEX IF NOT EXISTS tokens_app ON tokens (app_id, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    app_id TEXT NOT NULL,
    key TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, key)
);
-- status: 0 success, 1 pending, 2 fail, 3 sending (Svix's MessageStatus).
-- A leased delivery has leased = 1, next_attempt_at = the end of its lease, lease_owner =
-- the node holding it and lease_gen = the lease's fencing generation (grown by each lease;
-- writes about a leased delivery match on owner and generation).
-- A delivery is one message to one endpoint, so that pair is its key and every write
-- finds it by that pair; its id is kept (for the API) but not indexed, since an index on
-- it would be one more B-tree written by every publish.
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    leased INTEGER NOT NULL,
    trigger INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    lease_owner INTEGER,
    lease_gen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (msg_id, endpoint_id)
) WITHOUT ROWID;
-- Pending deliveries, in two parts. Leased to a process (created at ingest and attempted
-- at once: the hot path) by lease end, for leases that run out; waiting for a poll
-- (retries, overflow, released) by endpoint, then due time, so that endpoints take turns
-- at each poll, each with its oldest due first.
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (next_attempt_at) WHERE status = 1 AND leased = 1;
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (endpoint_id, next_attempt_at) WHERE status = 1 AND leased = 0;
CREATE INDEX IF NOT EXISTS deliveries_endpoint ON deliveries (endpoint_id, msg_id);
-- Attempts are found by message (the key) or by endpoint; a rowid table would need one
-- more B-tree on every attempt.
CREATE TABLE IF NOT EXISTS attempts (
    id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    error TEXT,
    trigger INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (msg_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempts_endpoint ON attempts (endpoint_id, id);
