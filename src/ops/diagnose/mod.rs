//! `reco diagnose`: checks of everything that has run reco's databases out of connections before,
//! each with a verdict, the evidence and a one-line remedy.
//!
//! The checks read the database server (limits, backends, timeouts, TLS, whether a pooler answers
//! in its place) over one connection and the replicas' pools through the monitor. Exit status: 0
//! when every check is ok, 1 with warnings, 2 with failures.

mod checks;
mod report;

pub use report::{Check, Inputs, Verdict};

/// Runs every check, in the order they are shown. Without a database nothing else can be asked;
/// on SQLite there are no connection limits.
pub fn checks(i: &Inputs<'_>) -> Vec<Check> {
    let database = checks::database(i);
    if database.verdict == Verdict::Fail {
        return vec![database];
    }
    let (Some(server), Some(facts)) = (&i.server, &i.facts) else {
        let sqlite = report::check(
            "server",
            Verdict::Ok,
            "SQLite: no connection limits to check".into(),
            "",
        );
        return vec![database, sqlite];
    };
    vec![
        database,
        checks::connection_limit(i, server),
        checks::backends(i, server),
        checks::idle_in_transaction(server),
        checks::long_queries(server),
        checks::leaks(i),
        checks::feed(i),
        checks::pooler(i, facts),
        checks::recycle(i, facts),
        checks::tls(i, facts),
    ]
}

/// The exit status for a set of checks: 0 all ok, 1 warnings, 2 failures.
pub fn exit_status(checks: &[Check]) -> i32 {
    match checks.iter().map(|c| c.verdict).max() {
        Some(Verdict::Fail) => 2,
        Some(Verdict::Warn) => 1,
        _ => 0,
    }
}

/// The checks as text, one verdict per line with its remedy under it.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        out.push_str(&format!("{tag}  {:<20} {}\n", c.name, c.evidence));
        if !c.remedy.is_empty() {
            out.push_str(&format!("      {:<20} fix: {}\n", "", c.remedy));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::report::check;
    use super::*;

    #[test]
    fn exit_status_is_the_worst_verdict() {
        let c = |v| check("x", v, String::new(), "do something");
        assert_eq!(exit_status(&[c(Verdict::Ok)]), 0);
        assert_eq!(exit_status(&[c(Verdict::Ok), c(Verdict::Warn)]), 1);
        assert_eq!(exit_status(&[c(Verdict::Fail), c(Verdict::Warn)]), 2);
        assert_eq!(c(Verdict::Ok).remedy, "", "no remedy for what is fine");
        assert!(render_text(&[c(Verdict::Warn)]).contains("fix: do something"));
    }
}
