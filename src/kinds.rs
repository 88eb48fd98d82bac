//! The closed sets of names that every layer speaks: which engine answers a request
//! ([`EngineKind`]) and which database a URL points at ([`Backend`]). They sit below
//! [`crate::config`] because the configuration is written in them; `engine` and `db` re-export
//! them.

use serde::{Deserialize, Serialize};

/// Which recommender answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The orchestrator's choice (an experiment's variant, or `smart`'s rules).
    Auto,
    /// Item-to-item neighbours of the user's items blended with time-decayed popularity.
    Fast,
    /// ALS, BPR, item-to-item and content blended with weights fitted at training time.
    Quality,
    /// Candidates from several sources scored by a learned ranker.
    Enhanced,
    /// Routes by what is known about the user.
    Smart,
    /// Most interacted-with items.
    Popularity,
}

impl EngineKind {
    /// Every engine, `auto` first.
    pub const ALL: [EngineKind; 6] = [
        EngineKind::Auto,
        EngineKind::Fast,
        EngineKind::Quality,
        EngineKind::Enhanced,
        EngineKind::Smart,
        EngineKind::Popularity,
    ];

    /// The engines that compute answers themselves: every one but `auto`, which delegates.
    pub fn serving() -> impl Iterator<Item = EngineKind> {
        Self::ALL.into_iter().filter(|k| *k != EngineKind::Auto)
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Fast => "fast",
            EngineKind::Quality => "quality",
            EngineKind::Enhanced => "enhanced",
            EngineKind::Smart => "smart",
            EngineKind::Popularity => "popularity",
        }
    }
}

/// Which database the URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend named by a URL's scheme, if it is one reco supports.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for kind in EngineKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<EngineKind>(&json).unwrap(), kind);
        }
        assert_eq!(EngineKind::serving().count(), 5);
    }

    #[test]
    fn backends_come_from_the_scheme() {
        assert_eq!(
            Backend::from_url("postgresql://h/d"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("SQLITE://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("mysql://h/d"), None);
    }
}
