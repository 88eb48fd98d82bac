//! [`Snapshot`]: every trained model the engines read, fixed at one moment. Built by `train`,
//! swapped into the engine whole; serialisable so that one replica of a cluster trains and the
//! others load it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::algo::popularity::Popularity;
use crate::algo::{Csr, als, bpr, content, enhanced, itemknn};

/// Everything the engines read, trained at one moment. Serialisable, so that one replica of a
/// cluster trains and the others load it ([`Snapshot::encode`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Increases by one per successful run.
    pub version: u64,
    pub trained_at: DateTime<Utc>,
    /// Items `0..n_items` of the engine's index were known to this run.
    pub n_items: usize,
    /// The id of each of those items: the index space of every model here.
    pub item_ids: Vec<Arc<str>>,
    /// Row of each trained user in `train` and in the factor models.
    pub user_rows: HashMap<Arc<str>, u32>,
    /// Users × items training weights.
    pub train: Csr,
    pub popularity: Popularity,
    /// The most popular items by decayed popularity, best first (at most 1,000).
    pub popular_order: Vec<u32>,
    pub itemknn: itemknn::ItemKnn,
    pub als: als::Als,
    pub bpr: bpr::Bpr,
    pub content: content::Content,
    /// Weights of ALS, BPR, item-to-item and content in the `quality` blend, fitted on a temporal
    /// validation split of this run's data.
    pub quality_weights: Vec<f32>,
    /// The scoring model of `enhanced`, fitted on the same validation split.
    pub ranker: enhanced::Ranker,
    /// Category ids of each item (for `enhanced`'s category features) and the ids' names.
    pub categories: Vec<Box<[u32]>>,
    pub category_names: Vec<String>,
    pub fit_seconds: f64,
}

impl Snapshot {
    /// The snapshot as bytes (postcard: compact, and serde-driven like the rest of reco).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a snapshot serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    /// The models `enhanced` generates candidates from.
    pub fn enhanced_models(&self) -> enhanced::Models<'_> {
        enhanced::Models {
            als: &self.als,
            bpr: &self.bpr,
            itemknn: &self.itemknn,
            content: &self.content,
            popularity: &self.popularity.scores,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}
