-- Replicas sharing one connection budget (`cluster.connection_budget`), and the trained snapshots
-- that one replica publishes for the others to load.

-- One row per running replica. Times are the database server's clock (epoch milliseconds), so
-- replicas with skewed clocks still agree on who is alive.
CREATE TABLE reco_replicas (
    id TEXT PRIMARY KEY,
    -- Base URL for `reco monitor` and `reco reset`; NULL when not known.
    url TEXT,
    application_name TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    -- Connections this replica may hold right now. Lowered only after its pool shrank; raised only
    -- while the budget's lock is held and the sum stays within the budget.
    ceiling INTEGER NOT NULL CHECK (ceiling >= 0)
);

-- A snapshot is stored in chunks (a bytea value is limited to 1 GB, and smaller rows stream).
CREATE TABLE reco_snapshots (
    version BIGINT PRIMARY KEY,
    trained_by TEXT NOT NULL,
    trained_ms BIGINT NOT NULL,
    chunks INTEGER NOT NULL,
    bytes BIGINT NOT NULL,
    -- Set once every chunk is written: loaders only read complete snapshots.
    complete BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE reco_snapshot_chunks (
    version BIGINT NOT NULL REFERENCES reco_snapshots (version) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (version, chunk)
);
