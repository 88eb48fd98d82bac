//! What every part of the cluster asks the database the same way: advisory-lock keys, the server's
//! clock, and how many backends the application holds.

use sqlx::Row;

use super::error::Error;
use crate::db::{Conn, Pool};
use crate::util::stable_hash;

/// Lock keys: fixed per purpose and application name, so two deployments in one database do not
/// share a budget or a trainer.
pub(super) fn lock_key(purpose: &str, application_name: &str) -> i64 {
    stable_hash(&format!("reco:{purpose}:{application_name}")) as i64
}

/// The database server's clock in epoch milliseconds, as SQL: every time in the registry is the
/// server's, so replicas with skewed clocks agree.
macro_rules! server_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}
pub(super) use server_ms;

/// Backends of `application_name` the server shows: every replica's connections, including
/// closing ones whose backends have not exited yet and a starting replica's first one.
pub(super) async fn backends_on_server(
    pool: &Pool,
    conn: &mut Conn,
    application_name: &str,
) -> Result<i64, Error> {
    Ok(pool
        .query("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_one(&mut **conn)
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_purpose_and_application() {
        assert_ne!(lock_key("train", "reco"), lock_key("budget", "reco"));
        assert_ne!(lock_key("train", "reco"), lock_key("train", "reco-b"));
        assert_eq!(lock_key("train", "reco"), lock_key("train", "reco"));
    }
}
