//! The `enhanced` recommender: candidate generation from several sources, then a learned scoring
//! model over per-candidate features.
//!
//! Sources: the factorisation's (ALS) best items, item-to-item neighbours of the history, content
//! neighbours of the history, and the most popular items of the user's favourite categories (plus
//! a few popular items overall, so a newcomer still gets candidates). Every candidate gets the same
//! [`FEATURES`] whatever source found it, and a logistic regression [`Ranker`] fitted on a temporal
//! validation split (each user's later interactions are the positives among their candidates)
//! turns the features into a score.
//!
//! [`candidates`] generates and describes them, [`ranker`] learns and applies the scoring model,
//! [`model`] wraps both as an offline model for evaluation.

pub mod candidates;
pub mod model;
pub mod ranker;

pub use candidates::{
    Candidate, FEATURES, FROM_CATEGORIES, FROM_CONTENT, FROM_FACTORS, FROM_NEIGHBOURS,
    FROM_POPULAR, MAX_SOURCES, Models, N_FEATURES, Scratch, Source, category_ids,
};
pub use model::Enhanced;
pub use ranker::Ranker;
