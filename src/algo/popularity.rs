//! Popularity with optional time decay: an item's score is the sum of its interaction weights, each
//! halved for every `half_life` of age. Without a half-life it is the plain weighted count.

use super::{History, Scorer};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Popularity {
    pub scores: Vec<f32>,
}

impl Popularity {
    /// The score of `item`; 0 for an item the fit did not know.
    pub fn score(&self, item: u32) -> f32 {
        self.scores.get(item as usize).copied().unwrap_or(0.0)
    }
}

/// One interaction as popularity sees it.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub item: u32,
    pub weight: f32,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// Sums the decayed weights. `now` is the reference time (the newest interaction, in evaluation).
pub fn fit(
    n_items: usize,
    events: impl IntoIterator<Item = Event>,
    now: i64,
    half_life_secs: Option<f64>,
) -> Popularity {
    let mut scores = vec![0f32; n_items];
    for e in events {
        let decay = match half_life_secs {
            Some(h) if h > 0.0 => 0.5f64.powf((now - e.timestamp).max(0) as f64 / h),
            _ => 1.0,
        };
        scores[e.item as usize] += e.weight * decay as f32;
    }
    Popularity { scores }
}

impl Scorer for Popularity {
    fn score(&self, _user: Option<usize>, _history: History<'_>, scores: &mut [f32]) {
        scores.copy_from_slice(&self.scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_per_half_life() {
        let day = 86_400;
        let events = [
            Event {
                item: 0,
                weight: 1.0,
                timestamp: 10 * day,
            },
            Event {
                item: 1,
                weight: 1.0,
                timestamp: 9 * day,
            },
            Event {
                item: 1,
                weight: 1.0,
                timestamp: 8 * day,
            },
        ];
        let plain = fit(2, events, 10 * day, None);
        assert_eq!(plain.scores, [1.0, 2.0]);
        let decayed = fit(2, events, 10 * day, Some(day as f64));
        assert!((decayed.scores[0] - 1.0).abs() < 1e-6);
        assert!((decayed.scores[1] - 0.75).abs() < 1e-6, "0.5 + 0.25");
    }
}
