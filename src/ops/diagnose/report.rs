//! What a check reports ([`Check`], [`Verdict`]) and what the checks look at ([`Inputs`]).

use serde::Serialize;

use crate::config::Config;
use crate::ops::monitor::View;
use crate::store::{ConnectionFacts, ServerStats};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub evidence: String,
    /// What to do about it (empty when ok).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remedy: String,
}

pub(super) fn check(name: &'static str, verdict: Verdict, evidence: String, remedy: &str) -> Check {
    Check {
        name,
        verdict,
        evidence,
        remedy: if verdict == Verdict::Ok {
            String::new()
        } else {
            remedy.to_string()
        },
    }
}

/// What the checks look at, gathered beforehand.
pub struct Inputs<'a> {
    pub config: &'a Config,
    /// Round trip of a ping, or why it failed.
    pub ping: Result<std::time::Duration, String>,
    pub server: Option<ServerStats>,
    pub facts: Option<ConnectionFacts>,
    /// The replicas' pools (the monitor's view).
    pub view: &'a View,
    /// How many replicas share the database (at least 1).
    pub replicas: usize,
}
