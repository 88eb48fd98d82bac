-- reco schema, SQLite. Timestamps are milliseconds since the Unix epoch; JSON is stored as TEXT
-- so that the same queries serve PostgreSQL and SQLite through one driver interface.
CREATE TABLE items (
    id           TEXT PRIMARY KEY,
    categories   TEXT   NOT NULL DEFAULT '[]',
    labels       TEXT   NOT NULL DEFAULT '{}',
    title        TEXT   NOT NULL DEFAULT '',
    description  TEXT   NOT NULL DEFAULT '',
    timestamp_ms INTEGER NOT NULL,
    hidden       INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1))
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    labels     TEXT   NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL
);

CREATE TABLE feedback (
    user_id       TEXT             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    item_id       TEXT             NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    feedback_type TEXT             NOT NULL,
    value         REAL             NOT NULL,
    timestamp_ms  INTEGER           NOT NULL,
    PRIMARY KEY (user_id, item_id, feedback_type)
);

CREATE INDEX feedback_by_item ON feedback (item_id, user_id, feedback_type);
