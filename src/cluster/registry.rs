//! The registry side of membership: what one heartbeat records in `reco_replicas` and reads back
//! (under the budget's advisory lock), and the ceiling a (re-)registration may record.

use std::sync::atomic::Ordering;

use sqlx::Row;

use super::budget::share;
use super::error::Error;
use super::membership::Cluster;
use super::sql::{backends_on_server, lock_key, server_ms};
use crate::db::Conn;

/// What one heartbeat read from the registry.
pub(super) struct Seen {
    /// This replica's share.
    pub(super) target: u32,
    /// The ceiling recorded for this replica.
    pub(super) recorded: u32,
    /// What the other replicas hold: recorded ceilings, or backends on the server if more.
    pub(super) others: u32,
    /// The newest complete snapshot.
    pub(super) latest: Option<u64>,
}

impl Cluster {
    /// Under the budget's lock (in the caller's transaction): records this replica's heartbeat,
    /// deletes dead replicas, and reads what the others hold and the newest snapshot.
    pub(super) async fn register_and_count(
        &self,
        conn: &mut Conn,
        mine: u32,
    ) -> Result<Seen, Error> {
        let pool = &self.pool;
        let url = self.url.lock().clone();
        pool.query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key("budget", &self.application_name))
            .execute(&mut **conn)
            .await?;
        let now: i64 = pool
            .query(concat!("SELECT ", server_ms!()))
            .fetch_one(&mut **conn)
            .await?
            .try_get(0)?;
        let updated = pool
            .query(
                "UPDATE reco_replicas SET heartbeat_ms = $1, url = $2, feed_pos = $4 WHERE id = $3",
            )
            .bind(now)
            .bind(url.clone())
            .bind(&self.id)
            .bind(self.feed_position())
            .execute(&mut **conn)
            .await?
            .rows_affected();
        let dead = pool
            .query(
                "DELETE FROM reco_replicas WHERE application_name = $1 AND heartbeat_ms < $2 \
                 RETURNING id, ceiling",
            )
            .bind(&self.application_name)
            .bind(now - self.dead_after.as_millis() as i64)
            .fetch_all(&mut **conn)
            .await?;
        for row in &dead {
            let id: String = row.try_get(0)?;
            let ceiling: i32 = row.try_get(1)?;
            tracing::warn!(replica = %id, ceiling, "replica missed its heartbeats: its share is handed out");
        }
        if updated == 0 {
            let ceiling = self.registration_ceiling(conn, mine).await?;
            pool.query(
                "INSERT INTO reco_replicas \
                 (id, url, application_name, started_ms, heartbeat_ms, ceiling) \
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(&self.id)
            .bind(url)
            .bind(&self.application_name)
            .bind(now)
            .bind(ceiling as i32)
            .execute(&mut **conn)
            .await?;
            self.registered.store(true, Ordering::Relaxed);
        }
        let rows = pool
            .query(
                "SELECT id, ceiling FROM reco_replicas WHERE application_name = $1 \
                 ORDER BY started_ms, id",
            )
            .bind(&self.application_name)
            .fetch_all(&mut **conn)
            .await?;
        let mut seen = Seen {
            target: 0,
            recorded: mine,
            others: 0,
            latest: None,
        };
        let mut rank = 0;
        for (i, row) in rows.iter().enumerate() {
            let id: String = row.try_get(0)?;
            let ceiling = row.try_get::<i32, _>(1)?.max(0) as u32;
            if id == self.id {
                rank = i;
                seen.recorded = ceiling;
            } else {
                seen.others += ceiling;
            }
        }
        // Backends the server shows for this application that are not this replica's: a
        // replica's closed connections linger while their backends exit, and a starting one's
        // first connection is not registered yet. Growth counts them too.
        let on_server = backends_on_server(pool, conn, &self.application_name).await?;
        let others_on_server = (on_server.max(0) as u32).saturating_sub(pool.open_connections());
        seen.others = seen.others.max(others_on_server);
        self.live.store(rows.len() as u32, Ordering::Relaxed);
        let max_each = pool.settings().ceiling();
        seen.target = share(self.budget, self.reserve, rows.len(), rank, max_each);
        let latest: Option<i64> = pool
            .query("SELECT max(version) FROM reco_snapshots WHERE complete")
            .fetch_one(&mut **conn)
            .await?
            .try_get(0)?;
        seen.latest = latest.map(|v| v as u64);
        Ok(seen)
    }

    /// The ceiling a registration records. The first one records what the pool holds (one
    /// connection, inside `join_reserve`; the others shrink for it). A replica whose row was
    /// counted out (it missed heartbeats for `dead_after`) and that comes back records only the
    /// room left, since the others may have taken its share meanwhile; it then shrinks to that.
    async fn registration_ceiling(&self, conn: &mut Conn, mine: u32) -> Result<u32, Error> {
        if !self.registered.load(Ordering::Relaxed) {
            return Ok(mine);
        }
        let pool = &self.pool;
        let held: i64 = pool
            .query(
                "SELECT CAST(coalesce(sum(ceiling), 0) AS BIGINT) FROM reco_replicas \
                 WHERE application_name = $1",
            )
            .bind(&self.application_name)
            .fetch_one(&mut **conn)
            .await?
            .try_get(0)?;
        let on_server = backends_on_server(pool, conn, &self.application_name).await?;
        let others_on_server = (on_server.max(0) as u32).saturating_sub(pool.open_connections());
        let others = (held.max(0) as u32).max(others_on_server);
        let room = self
            .budget
            .saturating_sub(self.reserve)
            .saturating_sub(others);
        tracing::warn!(
            held = mine,
            room,
            "this replica had been counted out (no heartbeat for dead_after): registering again \
             within the room left"
        );
        Ok(mine.min(room))
    }

    pub(super) async fn record_ceiling(&self, conn: &mut Conn, ceiling: u32) -> Result<(), Error> {
        self.pool
            .query("UPDATE reco_replicas SET ceiling = $1 WHERE id = $2")
            .bind(ceiling as i32)
            .bind(&self.id)
            .execute(&mut **conn)
            .await?;
        Ok(())
    }
}
