//! `enhanced` as an offline model, for evaluation: owns its fitted models and ranker.

use super::candidates::{Models, Scratch};
use super::ranker::Ranker;
use crate::algo::als::Als;
use crate::algo::bpr::Bpr;
use crate::algo::content::Content;
use crate::algo::ease::Ease;
use crate::algo::itemknn::ItemKnn;
use crate::algo::{History, Scorer};

/// `enhanced` as an offline model: owns its models (fitted on one training set) and a ranker.
pub struct Enhanced {
    pub als: Als,
    pub bpr: Bpr,
    pub itemknn: ItemKnn,
    pub content: Content,
    pub ease: Option<Ease>,
    pub popularity: Vec<f32>,
    pub popular_order: Vec<u32>,
    pub categories: Vec<Box<[u32]>>,
    pub ranker: Ranker,
}

impl Enhanced {
    pub fn models(&self) -> Models<'_> {
        Models {
            als: &self.als,
            bpr: &self.bpr,
            itemknn: &self.itemknn,
            content: &self.content,
            ease: self.ease.as_ref(),
            popularity: &self.popularity,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}

impl Scorer for Enhanced {
    /// Ranked candidates get their log-odds; items no source proposed get no score.
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        scores.fill(f32::NEG_INFINITY);
        let mut sc = Scratch::default();
        let mut candidates = self.models().candidates(user, history, &mut sc);
        self.ranker.rank(&mut candidates);
        for c in candidates {
            scores[c.item as usize] = c.score;
        }
    }
}
