-- Schema 1 of the PostgreSQL store: the embedded store's tables, shared by every node.
-- Times are Unix milliseconds (BIGINT); JSON columns hold text, kept as written; lists of
-- strings that listings filter on are text arrays. Ids sort by creation time as bytes, so
-- every id column (and every other column a listing pages by) uses the "C" collation,
-- whatever the database's default is.
CREATE TABLE applications (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    rate_limit BIGINT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE event_types (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    archived BOOLEAN NOT NULL,
    deprecated BOOLEAN NOT NULL,
    feature_flag TEXT,
    group_name TEXT,
    schemas TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    version INT NOT NULL,
    rate_limit BIGINT,
    disabled BOOLEAN NOT NULL,
    filter_types TEXT[],
    channels TEXT[],
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    secret TEXT NOT NULL,
    retired_secrets TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    filter TEXT,
    name TEXT,
    method TEXT NOT NULL,
    envelope TEXT NOT NULL,
    party TEXT,
    transform TEXT,
    payload_mode TEXT NOT NULL,
    diff_keep TEXT[] NOT NULL,
    -- Grows with every write: updates are compare-and-set on it.
    revision BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_app ON endpoints (app_id, id);

-- Messages are found by (app_id, id), or by (app_id, event_id).
CREATE TABLE messages (
    app_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    event_id TEXT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    channels TEXT[],
    tags TEXT[],
    created_at BIGINT NOT NULL,
    origin TEXT,
    entity_type TEXT,
    entity_id TEXT,
    entity_deleted BOOLEAN NOT NULL,
    -- The message whose payload was the entity's snapshot when this one was accepted (its
    -- payload is not copied: an entity's updates would store each payload twice).
    previous_id TEXT COLLATE "C",
    PRIMARY KEY (app_id, id)
);
CREATE UNIQUE INDEX messages_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;

-- Each entity's snapshot: the last message published about it (its payload is the
-- snapshot); entity_type is '' when none was given. A message about an entity locks its
-- row, so concurrent messages about one entity each see the one accepted before.
CREATE TABLE entities (
    app_id TEXT COLLATE "C" NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    msg_id TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, entity_type, entity_id)
);
CREATE INDEX entities_updated ON entities (updated_at);

-- Endpoints failing continuously since failing_since (cleared by a success).
CREATE TABLE failing_endpoints (
    endpoint_id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    failing_since BIGINT NOT NULL
);

-- Settings every node shares (the admin token's digest).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Application-scoped API tokens: only a SHA-256 digest of each token is kept.
CREATE TABLE tokens (
    digest TEXT PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    app_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_app ON tokens (app_id, id);

CREATE TABLE idempotency_keys (
    app_id TEXT COLLATE "C" NOT NULL,
    key TEXT NOT NULL,
    msg_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, key)
);

-- Each throttled endpoint's next free start, in Unix nanoseconds (the spacing of a rate
-- is in nanoseconds, see store::next_slot).
CREATE TABLE throttles (
    endpoint_id TEXT COLLATE "C" PRIMARY KEY,
    next_start_ns BIGINT NOT NULL
);

-- status: 0 success, 1 pending, 2 fail, 3 sending (Svix's MessageStatus).
-- A leased delivery has leased = 1, next_attempt_at = the end of its lease, lease_owner =
-- the node holding it and lease_gen = the lease's fencing generation (grown by each lease;
-- writes about a leased delivery match on owner and generation).
-- A delivery is one message to one endpoint, so that pair is its key.
CREATE TABLE deliveries (
    msg_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    status INT NOT NULL,
    attempts INT NOT NULL,
    next_attempt_at BIGINT,
    leased INT NOT NULL,
    trigger INT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    lease_owner BIGINT,
    lease_gen BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (msg_id, endpoint_id)
);
-- Pending deliveries, in two parts. Leased to a node (created at ingest and attempted at
-- once: the hot path) by lease end, for leases that run out; waiting for a poll (retries,
-- overflow, released) by endpoint, then due time, so that endpoints take turns at each
-- poll, each with its oldest due first.
CREATE INDEX deliveries_leased ON deliveries (next_attempt_at) WHERE status = 1 AND leased = 1;
CREATE INDEX deliveries_waiting ON deliveries (endpoint_id, next_attempt_at) WHERE status = 1 AND leased = 0;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, msg_id);

-- Attempts are found by message (the key) or by endpoint (ids sort by time).
CREATE TABLE attempts (
    msg_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    delivery_id TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    status INT NOT NULL,
    response_status_code INT NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms BIGINT NOT NULL,
    error TEXT,
    trigger INT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (msg_id, id)
);
CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id);
