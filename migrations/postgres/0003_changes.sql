-- The change feed replicas follow (issue 14): every write a clustered replica makes adds one row
-- here in the same transaction, and every replica applies the others' rows to its memory.

CREATE SEQUENCE reco_changes_pos;

-- A position is drawn only once the transaction has its id: `pg_current_xact_id()` assigns one
-- when there is none, and `CASE` evaluates its condition before its result. The follower's
-- argument (`cluster::Frontier`) needs every position's transaction id to be older than the
-- position itself.
CREATE FUNCTION reco_next_position() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('reco_changes_pos') END
$$;

CREATE TABLE reco_changes (
    pos BIGINT PRIMARY KEY DEFAULT reco_next_position(),
    -- The replica that wrote it (it skips its own changes), or `import` for `reco import`.
    replica TEXT NOT NULL,
    -- feedback, unfeedback, items, delete_item, users, delete_user, reload
    kind TEXT NOT NULL,
    payload JSONB,
    -- Commit-ish time by the server's clock (epoch ms), for the followers' lag.
    at_ms BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
);

-- Everything at or below `horizon` has been pruned; a follower whose position is below it
-- reloads from the tables instead.
CREATE TABLE reco_feed (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    horizon BIGINT NOT NULL DEFAULT 0
);
INSERT INTO reco_feed DEFAULT VALUES;

-- Where each replica's follower stands, recorded with its heartbeat: pruning keeps what a live
-- replica still needs.
ALTER TABLE reco_replicas ADD COLUMN feed_pos BIGINT;
