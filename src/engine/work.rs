//! How much work a request asks of an engine, in rough operations, before it runs: the
//! orchestrator runs a job on the request's own async worker when this, times the time per
//! operation it has measured, is small, and hands it to the engine threads otherwise.
//!
//! The count follows what the engines do: `quality` (and `smart`, whose longest route is
//! `quality`) scores every item with the weighted members of its blend (factor models, EASE's
//! rows of the liked items, item-to-item's rows or lists), selects a candidate pool and
//! diversifies it; `enhanced` scores every item with one factor
//! model, gathers neighbours of up to 200 liked items and ranks a few hundred candidates. Only the
//! proportions matter: the orchestrator learns the time per operation for each engine.

use super::asked::Asked;
use crate::algo::blend::mmr_pool;
use crate::algo::diversity::MAX_MMR_PICKS;
use crate::algo::{ease, enhanced};
use crate::kinds::EngineKind;

/// Operations per candidate for `enhanced`'s features and ranker.
const PER_CANDIDATE: u64 = 64;
/// Operations per step of MMR (one candidate's overlap with the newest pick): measured on
/// MovieLens 100K, `quality` with `n=100` costs 7 times `n=10`, nearly all of it in MMR.
const PER_MMR_STEP: u64 = 32;
/// Operations per item answered (its reason and id).
const PER_ANSWER: u64 = 500;

/// The rough operation count of `kind` answering `asked`.
pub fn estimate(asked: &Asked<'_>, kind: EngineKind) -> u64 {
    let snap = asked.snap;
    let items = snap.n_items as u64;
    let neighbours = |cap: usize| -> u64 {
        asked
            .liked_trained()
            .take(cap)
            .map(|j| {
                let j = j as usize;
                (snap.itemknn.neighbours[j].len() + snap.content.neighbours[j].len()) as u64
            })
            .sum()
    };
    // The entries of the liked items' lists of one kind.
    let lists = |len: &dyn Fn(usize) -> usize| -> u64 {
        asked.liked_trained().map(|j| len(j as usize) as u64).sum()
    };
    let q = asked.q;
    let walk = (q.n + q.exclude.len()) as u64;
    match kind {
        EngineKind::Fast | EngineKind::Popularity => {
            neighbours(enhanced::MAX_SOURCES) + walk + q.n as u64 * PER_ANSWER
        }
        EngineKind::Quality | EngineKind::Smart | EngineKind::Auto => {
            let pool = mmr_pool(q.n) as u64;
            let picks = q.n.min(MAX_MMR_PICKS) as u64;
            // Only the blend's members with a weight are scored (`snap.quality_weights`, in the
            // order ALS, BPR, item-to-item, content, EASE, popularity).
            let weighted =
                |member: usize| snap.quality_weights.get(member).is_some_and(|&w| w > 0.0);
            let factors = [(0, snap.als.factors), (1, snap.bpr.factors)]
                .into_iter()
                .filter(|&(member, _)| weighted(member))
                .map(|(_, f)| f as u64)
                .sum::<u64>();
            // EASE, and item-to-item when its lists are dense rows, add one catalogue-long row
            // per liked item (EASE at most its cap); sparse lists cost their entries.
            let liked = |cap: usize| asked.liked_trained().take(cap).count() as u64;
            let ease_rows = match &snap.ease {
                Some(_) if weighted(4) => liked(ease::MAX_HISTORY),
                _ => 0,
            };
            let (knn_rows, knn_entries) = match weighted(2) {
                true if snap.itemknn.dense_rows() => (liked(usize::MAX), 0),
                true => (0, lists(&|j| snap.itemknn.neighbours[j].len())),
                false => (0, 0),
            };
            let content = match weighted(3) {
                true => lists(&|j| snap.content.neighbours[j].len()),
                false => 0,
            };
            // Scoring, blending and selecting over the catalogue; the pool's walk and MMR.
            items * (factors + ease_rows + knn_rows + 16)
                + knn_entries
                + content
                + pool * (picks * PER_MMR_STEP + 8)
                + 4 * walk
                + q.n as u64 * PER_ANSWER
        }
        EngineKind::Enhanced => {
            let candidates = (enhanced::FROM_FACTORS
                + enhanced::FROM_NEIGHBOURS
                + enhanced::FROM_CONTENT
                + enhanced::FROM_CATEGORIES
                + enhanced::FROM_POPULAR) as u64;
            items * (snap.als.factors as u64 + 8)
                + neighbours(enhanced::MAX_SOURCES)
                + candidates * PER_CANDIDATE
                + walk
                + q.n as u64 * PER_ANSWER
        }
    }
}
