//! What a feedback row means: the one definition, used by serving, training, click attribution
//! and offline evaluation alike.
//!
//! Every row falls in one of three classes ([`Signal`]):
//! - **positive**: its type is listed in `recommend.positive_weights` and, for `rating`, its value is
//!   at least `recommend.rating_threshold`. A positive row trains the models with its type's weight,
//!   counts toward the item's popularity, makes the item a source of "because you liked X", counts
//!   toward `smart`'s history length and, on a recommended item, as a click;
//! - **negative**: its type is in `recommend.negative_types` (`dislike`, `hide`): the item is never
//!   recommended to that user again, and an item with a negative row is not a source for that user
//!   even if it also has a positive one;
//! - **seen**: anything else (a 2-star rating, a type the configuration does not list): the item is
//!   not recommended to that user again, and nothing more.

use std::collections::BTreeMap;

use crate::config::RecommendConfig;

/// The class of one feedback row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Liked, with its training weight (above 0).
    Positive(f32),
    /// Disliked or hidden.
    Negative,
    /// Interacted with, neither liked nor disliked.
    Seen,
}

/// The configured feedback semantics.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackPolicy {
    positive_weights: BTreeMap<String, f32>,
    rating_threshold: f64,
    negative_types: Vec<String>,
}

/// The type whose value is a rating, compared against `rating_threshold`.
const RATING: &str = "rating";

impl FeedbackPolicy {
    pub fn from_config(config: &RecommendConfig) -> Self {
        Self {
            positive_weights: config.positive_weights.clone(),
            rating_threshold: config.rating_threshold,
            negative_types: config.negative_types.clone(),
        }
    }

    /// The class of a row of `feedback_type` with `value`. A type listed both as negative and
    /// with a weight is negative.
    pub fn signal(&self, feedback_type: &str, value: f64) -> Signal {
        if self.is_negative(feedback_type) {
            return Signal::Negative;
        }
        match self.positive_weights.get(feedback_type) {
            Some(_) if feedback_type == RATING && value < self.rating_threshold => Signal::Seen,
            Some(&w) => Signal::Positive(w),
            None => Signal::Seen,
        }
    }

    /// Training weight of a row, or `None` when it is not positive.
    pub fn weight(&self, feedback_type: &str, value: f64) -> Option<f32> {
        match self.signal(feedback_type, value) {
            Signal::Positive(w) => Some(w),
            _ => None,
        }
    }

    pub fn is_positive(&self, feedback_type: &str, value: f64) -> bool {
        self.weight(feedback_type, value).is_some()
    }

    pub fn is_negative(&self, feedback_type: &str) -> bool {
        self.negative_types.iter().any(|t| t == feedback_type)
    }
}

impl Default for FeedbackPolicy {
    fn default() -> Self {
        Self::from_config(&RecommendConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_type() {
        let p = FeedbackPolicy::default();
        assert_eq!(p.signal("like", 1.0), Signal::Positive(1.0));
        assert_eq!(p.signal("view", 1.0), Signal::Positive(0.1));
        assert_eq!(p.signal("rating", 5.0), Signal::Positive(1.0));
        assert_eq!(p.signal("rating", 4.0), Signal::Positive(1.0));
        assert_eq!(
            p.signal("rating", 2.0),
            Signal::Seen,
            "a 2-star rating is not a like"
        );
        assert_eq!(p.signal("dislike", 1.0), Signal::Negative);
        assert_eq!(p.signal("hide", 1.0), Signal::Negative);
        assert_eq!(
            p.signal("bookmark", 1.0),
            Signal::Seen,
            "unlisted types are only seen"
        );
        assert_eq!(p.weight("rating", 3.0), None);
        assert!(p.is_positive("purchase", 0.0));
    }

    #[test]
    fn negative_wins_over_a_weight() {
        let mut c = RecommendConfig::default();
        c.positive_weights.insert("dislike".into(), 1.0);
        assert_eq!(
            FeedbackPolicy::from_config(&c).signal("dislike", 1.0),
            Signal::Negative
        );
    }
}
