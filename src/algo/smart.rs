//! The `smart` engine's routing rules: what is known about a user decides which recommender
//! answers. A newcomer gets what is trending; a user with a short history gets item-to-item and
//! content neighbours of what they touched (content reaches items nobody has interacted with yet);
//! an established user gets the `quality` blend.
//!
//! [`route`] is the rule the server and offline evaluation share; [`Smart`] is the offline model.

use super::blend::normalise;
use super::{History, Scorer};

/// Positive items below which a history counts as short.
pub const SHORT_HISTORY: usize = 5;
/// Weight of content against item-to-item neighbours for a short history: equal, after scaling
/// each to its best score.
pub const SHORT_CONTENT_WEIGHT: f32 = 0.5;

/// Which recommender `smart` hands a user to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// No history: trending items (in the requested categories).
    NewUser,
    /// Fewer than [`SHORT_HISTORY`] items: content and neighbours of them.
    ShortHistory,
    /// The `quality` blend.
    Established,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::NewUser => "new_user",
            Route::ShortHistory => "short_history",
            Route::Established => "established",
        }
    }
}

/// The route for a history of `len` positive items.
pub fn route(len: usize) -> Route {
    match len {
        0 => Route::NewUser,
        n if n < SHORT_HISTORY => Route::ShortHistory,
        _ => Route::Established,
    }
}

/// What a short history gets: its neighbours (the default), or the blend an established user
/// gets, when training finds on its validation split that the blend serves short histories better.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortRoute {
    #[default]
    Neighbours,
    Blend,
}

/// `smart` as an offline model over already fitted members.
pub struct Smart<'a> {
    pub trending: Box<dyn Scorer + 'a>,
    pub neighbours: Box<dyn Scorer + 'a>,
    pub content: Box<dyn Scorer + 'a>,
    pub established: Box<dyn Scorer + 'a>,
    pub short: ShortRoute,
}

impl Scorer for Smart<'_> {
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        match route(history.items.len()) {
            Route::NewUser => self.trending.score(user, history, scores),
            Route::ShortHistory if self.short == ShortRoute::Blend => {
                self.established.score(user, history, scores)
            }
            Route::ShortHistory => {
                self.neighbours.score(user, history, scores);
                normalise(scores);
                let mut content = vec![0f32; scores.len()];
                self.content.score(user, history, &mut content);
                normalise(&mut content);
                scores.iter_mut().zip(&content).for_each(|(s, c)| {
                    *s = (1.0 - SHORT_CONTENT_WEIGHT) * *s + SHORT_CONTENT_WEIGHT * c
                });
            }
            Route::Established => self.established.score(user, history, scores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::Fixed;

    #[test]
    fn routes_by_history_length() {
        assert_eq!(route(0), Route::NewUser);
        assert_eq!(route(1), Route::ShortHistory);
        assert_eq!(route(SHORT_HISTORY - 1), Route::ShortHistory);
        assert_eq!(route(SHORT_HISTORY), Route::Established);
        let smart = Smart {
            trending: Box::new(Fixed(vec![1.0, 0.0, 0.0])),
            neighbours: Box::new(Fixed(vec![0.0, 2.0, 0.0])),
            content: Box::new(Fixed(vec![0.0, 0.0, 4.0])),
            established: Box::new(Fixed(vec![0.0, 0.0, 8.0])),
            short: ShortRoute::Neighbours,
        };
        let mut s = vec![0.0; 3];
        let none = History {
            items: &[],
            weights: &[],
        };
        smart.score(None, none, &mut s);
        assert_eq!(s, [1.0, 0.0, 0.0], "newcomer: trending");
        let one = History {
            items: &[0],
            weights: &[1.0],
        };
        smart.score(None, one, &mut s);
        assert_eq!(
            s,
            [0.0, 0.5, 0.5],
            "short: neighbours and content, each scaled"
        );
        let smart = Smart {
            short: ShortRoute::Blend,
            ..smart
        };
        smart.score(None, one, &mut s);
        assert_eq!(
            s,
            [0.0, 0.0, 8.0],
            "short, when validation says so: the blend"
        );
    }
}
