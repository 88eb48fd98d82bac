//! The checks of `reco diagnose`, one function each: every one looks at what was gathered
//! ([`Inputs`]) and gives a verdict with its evidence and remedy.

use secrecy::ExposeSecret;

use super::report::{Check, Inputs, Verdict, check};
use crate::config::{Pooler, redact_url};
use crate::store::{ConnectionFacts, ServerStats};

/// Idle-in-transaction sessions older than this fail rather than warn.
const IDLE_IN_TRANSACTION_FAIL_SECS: f64 = 300.0;
/// Statements running longer than this are reported.
const LONG_QUERY_SECS: f64 = 60.0;

/// The database's host as the URL names it (empty when it names none).
fn host_of(i: &Inputs<'_>) -> String {
    url::Url::parse(i.config.db.url.expose_secret())
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// Whether the database answers (the other checks need it to).
pub(super) fn database(i: &Inputs<'_>) -> Check {
    let url = redact_url(i.config.db.url.expose_secret());
    match &i.ping {
        Ok(rtt) => check(
            "database",
            Verdict::Ok,
            format!(
                "{url} answers, round trip {:.1} ms",
                rtt.as_secs_f64() * 1000.0
            ),
            "",
        ),
        Err(e) => check(
            "database",
            Verdict::Fail,
            format!("{url}: {e}"),
            "check db.url, that the server runs and that this host may connect (pg_hba.conf, firewall)",
        ),
    }
}

/// Whether the configured sizing fits what the server allows, after other applications.
pub(super) fn connection_limit(i: &Inputs<'_>, server: &ServerStats) -> Check {
    let db = &i.config.db;
    let available = server.available();
    let per_replica = i64::from(db.pool_size + db.max_overflow);
    // With a cluster budget the replicas share it, however many there are.
    let budget = i.config.cluster.connection_budget.map(i64::from);
    let ceilings = budget.unwrap_or(per_replica * i.replicas as i64);
    let others: i64 = server
        .backends
        .iter()
        .filter(|b| !b.application.starts_with(&db.application_name))
        .map(|b| b.count)
        .sum();
    let sizing = match budget {
        Some(b) => format!("cluster.connection_budget {b}, shared by the replicas"),
        None => format!(
            "pool_size {} + max_overflow {} = {per_replica} per replica x {} replica(s) = {ceilings}",
            db.pool_size, db.max_overflow, i.replicas
        ),
    };
    let evidence = format!(
        "{sizing}; the server allows {available} client connections (max_connections {} - {} \
         reserved); other applications hold {others}",
        server.max_connections, server.reserved_connections
    );
    let verdict = if ceilings > available {
        Verdict::Fail
    } else if ceilings + others > available {
        Verdict::Warn
    } else {
        Verdict::Ok
    };
    check(
        "connection_limit",
        verdict,
        evidence,
        &match budget {
            Some(_) => format!(
                "set cluster.connection_budget to at most {} (what other applications leave)",
                (available - others).max(0)
            ),
            None => format!(
                "make (db.pool_size + db.max_overflow) x replicas at most {} (what other \
                 applications leave), or set cluster.connection_budget",
                (available - others).max(0)
            ),
        },
    )
}

/// How many client backends the server has, by application.
pub(super) fn backends(i: &Inputs<'_>, server: &ServerStats) -> Check {
    let db = &i.config.db;
    let ours = server.of_application(&db.application_name);
    let total = server.total();
    let by_app = {
        let mut apps: Vec<(String, i64)> = Vec::new();
        for b in &server.backends {
            let name = if b.application.is_empty() {
                "(none)".to_string()
            } else {
                b.application.clone()
            };
            match apps.iter_mut().find(|a| a.0 == name) {
                Some(a) => a.1 += b.count,
                None => apps.push((name, b.count)),
            }
        }
        apps.iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limit = i.config.monitor.warn_total_connections;
    check(
        "backends",
        if total > limit {
            Verdict::Warn
        } else {
            Verdict::Ok
        },
        format!(
            "{total} client backends ({ours} of {}): {}",
            db.application_name,
            if by_app.is_empty() { "none" } else { &by_app }
        ),
        &format!(
            "more than monitor.warn_total_connections = {limit}: find the application holding them in `reco monitor`"
        ),
    )
}

/// Sessions idle inside a transaction (they hold a connection and locks).
pub(super) fn idle_in_transaction(server: &ServerStats) -> Check {
    let idle_tx: Vec<_> = server
        .backends
        .iter()
        .filter(|b| b.state.starts_with("idle in transaction"))
        .collect();
    let oldest = idle_tx
        .iter()
        .map(|b| b.oldest_state_seconds)
        .fold(0.0, f64::max);
    check(
        "idle_in_transaction",
        if idle_tx.is_empty() {
            Verdict::Ok
        } else if oldest >= IDLE_IN_TRANSACTION_FAIL_SECS {
            Verdict::Fail
        } else {
            Verdict::Warn
        },
        if idle_tx.is_empty() {
            "no session is idle in a transaction".into()
        } else {
            idle_tx
                .iter()
                .map(|b| {
                    format!(
                        "{} session(s) of {} idle in transaction, oldest {:.0} s",
                        b.count,
                        if b.application.is_empty() {
                            "(none)"
                        } else {
                            &b.application
                        },
                        b.oldest_state_seconds
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        "commit or roll back in that application; set idle_in_transaction_session_timeout = '60s' on the server",
    )
}

/// Statements running longer than a minute.
pub(super) fn long_queries(server: &ServerStats) -> Check {
    let long: Vec<_> = server
        .backends
        .iter()
        .filter(|b| b.state == "active" && b.oldest_state_seconds > LONG_QUERY_SECS)
        .collect();
    check(
        "long_queries",
        if long.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Warn
        },
        if long.is_empty() {
            format!("no statement has run longer than {LONG_QUERY_SECS:.0} s")
        } else {
            long.iter()
                .map(|b| {
                    format!(
                        "{} running, the oldest for {:.0} s",
                        b.application, b.oldest_state_seconds
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        "look at pg_stat_activity and pg_cancel_backend(pid) what should not run; set db.statement_timeout for reco",
    )
}

/// Connections the replicas report held past `leak_threshold`, and replicas that did not answer.
pub(super) fn leaks(i: &Inputs<'_>) -> Check {
    let db = &i.config.db;
    let mut leaks = Vec::new();
    for r in &i.view.replicas {
        for s in r.pool.iter().flat_map(|p| &p.leak_suspects) {
            leaks.push(format!(
                "{}: held {:.0} s at {}",
                r.url,
                s["held_seconds"].as_f64().unwrap_or(0.0),
                s["location"].as_str().unwrap_or("?")
            ));
        }
    }
    let unreachable: Vec<&str> = i
        .view
        .replicas
        .iter()
        .filter(|r| r.pool.is_none())
        .map(|r| r.url.as_str())
        .collect();
    check(
        "leaks",
        if !leaks.is_empty() || !unreachable.is_empty() {
            Verdict::Warn
        } else {
            Verdict::Ok
        },
        if i.view.replicas.is_empty() {
            "not asked: no replicas given (monitor.replicas or --replica)".into()
        } else if leaks.is_empty() && unreachable.is_empty() {
            format!(
                "no connection held past db.leak_threshold ({} s) on {} replica(s)",
                db.leak_threshold,
                i.view.replicas.len()
            )
        } else {
            leaks
                .into_iter()
                .chain(
                    unreachable
                        .iter()
                        .map(|u| format!("{u}: could not be asked")),
                )
                .collect::<Vec<_>>()
                .join("; ")
        },
        "fix the code at that location to return its connection (or raise db.leak_threshold if the work is legitimately long)",
    )
}

/// Whether every replica's change-feed follower keeps up: one further behind than
/// `monitor.warn_feed_lag` serves without the other replicas' latest writes.
pub(super) fn feed(i: &Inputs<'_>) -> Check {
    let limit = i.config.monitor.warn_feed_lag;
    let following: Vec<(&str, f64)> = i
        .view
        .replicas
        .iter()
        .filter_map(|r| Some((r.url.as_str(), r.pool.as_ref()?.feed.as_ref()?.lag_seconds)))
        .collect();
    let behind: Vec<String> = following
        .iter()
        .filter(|(_, lag)| *lag > limit)
        .map(|(url, lag)| format!("{url}: {lag:.1} s behind"))
        .collect();
    let evidence = if following.is_empty() {
        "no replica follows a change feed (it takes cluster.connection_budget)".into()
    } else if behind.is_empty() {
        format!(
            "{} replica(s) within {limit} s of the change feed",
            following.len()
        )
    } else {
        behind.join("; ")
    };
    check(
        "feed",
        if behind.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Warn
        },
        evidence,
        "a lagging replica cannot read the feed: check its log for \"reading the change feed failed\", its pool (a parked replica reads nothing) and the database's load",
    )
}

/// Whether a pooler answers in the server's place, and whether `db.pooler` suits it.
pub(super) fn pooler(i: &Inputs<'_>, facts: &ConnectionFacts) -> Check {
    let db = &i.config.db;
    let parsed = url::Url::parse(db.url.expose_secret()).ok();
    let host = host_of(i);
    let url_port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432);
    let supavisor = host.contains("pooler.supabase.com");
    let pooler = supavisor
        || facts
            .server_port
            .is_some_and(|p| i64::from(p) != i64::from(url_port));
    let seen = if supavisor {
        format!("Supavisor in front ({host})")
    } else if pooler {
        format!(
            "a pooler answers on port {url_port}; the server listens on {}",
            facts.server_port.unwrap_or_default()
        )
    } else {
        "connected to PostgreSQL directly".into()
    };
    let (verdict, evidence, remedy) = match (pooler, db.pooler) {
        (true, Pooler::None) => (
            Verdict::Warn,
            format!(
                "{seen}, but db.pooler = \"none\": in transaction mode sqlx's prepared statements land on other server connections"
            ),
            "set db.pooler = \"transaction\" and db.direct_url (or \"session\" if the pooler keeps one server connection per client)",
        ),
        (true, Pooler::Transaction) if db.statement_timeout > 0.0 => (
            Verdict::Warn,
            format!(
                "{seen}; db.pooler = \"transaction\" (statements unnamed, one transaction per checkout, migrations via db.direct_url); db.statement_timeout is not sent through it"
            ),
            "set the timeout on the role instead: ALTER ROLE <user> SET statement_timeout = '…'",
        ),
        (true, p) => (
            Verdict::Ok,
            format!(
                "{seen}; db.pooler = \"{}\" handles it",
                format!("{p:?}").to_lowercase()
            ),
            "",
        ),
        (false, Pooler::Transaction) => (
            Verdict::Warn,
            format!(
                "{seen}, but db.pooler = \"transaction\": every checkout pays for a BEGIN and a COMMIT"
            ),
            "set db.pooler = \"none\" when connecting directly",
        ),
        (false, _) => (Verdict::Ok, seen, ""),
    };
    check("pooler", verdict, evidence, remedy)
}

/// `pool_recycle` against the server's `idle_session_timeout`.
pub(super) fn recycle(i: &Inputs<'_>, facts: &ConnectionFacts) -> Check {
    let db = &i.config.db;
    let recycle_ms = (db.pool_recycle * 1000.0) as i64;
    let idle_ms = facts.idle_session_timeout_ms;
    check(
        "recycle",
        if idle_ms > 0 && recycle_ms >= idle_ms {
            Verdict::Warn
        } else {
            Verdict::Ok
        },
        format!(
            "db.pool_recycle {} s; server idle_session_timeout {}; pool_pre_ping {}",
            db.pool_recycle,
            if idle_ms > 0 {
                format!("{} s", idle_ms as f64 / 1000.0)
            } else {
                "off".into()
            },
            if db.pool_pre_ping { "on" } else { "off" }
        ),
        &format!(
            "set db.pool_recycle below {} s so reco replaces connections before the server drops them, and keep db.pool_pre_ping on",
            idle_ms as f64 / 1000.0
        ),
    )
}

/// TLS to a non-local host.
pub(super) fn tls(i: &Inputs<'_>, facts: &ConnectionFacts) -> Check {
    let host = host_of(i);
    let local = host.is_empty()
        || host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || host == "::1";
    check(
        "tls",
        if !local && !facts.ssl {
            Verdict::Warn
        } else {
            Verdict::Ok
        },
        match (local, facts.ssl) {
            (_, true) => "this connection uses TLS".to_string(),
            (true, false) => format!("no TLS, but {host} is local"),
            (false, false) => format!("no TLS to the non-local host {host}"),
        },
        "add sslmode=require (or verify-full) to db.url",
    )
}
