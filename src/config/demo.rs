//! `[demo]`: the demo catalogue seeded into an empty embedded database.

use serde::{Deserialize, Serialize};

/// Demo data settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Import a generated demo catalogue when the database has no items.
    pub seed_if_empty: bool,
    /// Seed of the demo generator, so every run produces the same catalogue.
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed_if_empty: true,
            seed: 42,
        }
    }
}
