//! The operator's tools: `reco monitor`'s view of every replica's pool and the database's
//! connections ([`monitor`]), and `reco diagnose`'s checks with verdicts and remedies
//! ([`diagnose`]). They read the database server and the replicas' admin routes; they never touch a
//! running server's state.

pub mod diagnose;
pub mod monitor;
