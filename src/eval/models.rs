//! The models `reco evaluate` scores, built from one fit-and-learn step ([`Fitted`]): the single
//! models at the settings chosen on validation, and the engines the way the server composes them.

use std::sync::OnceLock;
use std::time::Instant;

use super::data::EvalData;
use super::learn::{
    Extras, Learned, Members, QUALITY_MEMBERS, Tuning, blend, fit_and_learn, smart,
};
use super::steps::Steps;
use super::tune::{self, Budget};
use crate::algo::blend::{Blend, Diversity};
use crate::algo::{self, Scorer};

/// MMR strength of `quality` (the server's `recommend.diversity` default).
pub const QUALITY_DIVERSITY: f32 = 0.1;

/// What every model of one `reco evaluate` run is built from: fitted and learned once.
pub struct Fitted {
    pub members: Members,
    pub learned: Learned,
    extras: Extras,
    /// Seconds of each fitting step, and of the whole fit-and-learn step.
    steps: Vec<(String, f64)>,
    seconds: f64,
    budget: Budget,
    /// RP3beta, a peer the server does not serve: searched and fitted when first asked for, with
    /// the seconds of its final fit and its chosen setting.
    rp3beta: OnceLock<(algo::rp3beta::Rp3Beta, f64, String)>,
    /// EASE for the table when training's budget declined it, found the same way.
    ease_peer: OnceLock<Option<(algo::ease::Ease, f64, String)>>,
    /// The validation split the peers are searched on, carved once for both.
    peer_validation: OnceLock<tune::Validation>,
}

impl Fitted {
    pub fn new(data: &EvalData, tuning: Tuning) -> Fitted {
        let started = Instant::now();
        let steps = Steps::default();
        let (members, learned) = fit_and_learn(data, true, tuning, &steps);
        let extras = Extras::of(data, &members);
        Fitted {
            members,
            learned,
            extras,
            steps: steps.into_list(),
            seconds: started.elapsed().as_secs_f64(),
            budget: tuning.budget,
            rp3beta: OnceLock::new(),
            ease_peer: OnceLock::new(),
            peer_validation: OnceLock::new(),
        }
    }

    /// The validation split of `data` the peers are searched on.
    fn peer_validation(&self, data: &EvalData) -> &tune::Validation {
        self.peer_validation
            .get_or_init(|| tune::validation(data, self.budget.0))
    }

    /// EASE searched and fitted for the table (training's own search declined it); `None` above
    /// its catalogue limit.
    fn ease_peer(&self, data: &EvalData) -> Option<&(algo::ease::Ease, f64, String)> {
        let peer = self.ease_peer.get_or_init(|| {
            let searched = tune::ease_peer(self.peer_validation(data), self.budget.0)?;
            let started = Instant::now();
            let params = algo::ease::Params {
                lambda: searched.values[0],
                ..Default::default()
            };
            let model = algo::ease::fit(&data.train, params)?;
            let setting = format!(
                "{} (a peer: training's budget declined it)",
                searched.choice.shown()
            );
            Some((model, started.elapsed().as_secs_f64(), setting))
        });
        peer.as_ref()
    }

    /// RP3beta searched on a validation split of `data` (as the served models are) and fitted on
    /// all of its training part.
    fn rp3beta(&self, data: &EvalData) -> &(algo::rp3beta::Rp3Beta, f64, String) {
        self.rp3beta.get_or_init(|| {
            let searched = tune::rp3beta_search(self.peer_validation(data), self.budget.0);
            let started = Instant::now();
            let params = tune::rp3beta_params(&searched.values);
            let model = algo::rp3beta::fit(&data.train, params);
            (
                model,
                started.elapsed().as_secs_f64(),
                searched.choice.shown(),
            )
        })
    }

    /// Seconds of the final fit of `step`.
    fn step_seconds(&self, step: &str) -> f64 {
        let last = self.steps.iter().rev().find(|(name, _)| name == step);
        last.map_or(0.0, |s| s.1)
    }

    /// The chosen setting of a tuned model, as the report shows it.
    fn chosen(&self, model: &str) -> Option<String> {
        let c = self.learned.choices.iter().find(|c| c.model == model)?;
        Some(c.shown())
    }

    /// `quality`'s weights and the recency inside histories it reads with, as the report shows
    /// them.
    fn weights(&self) -> String {
        let w = &self.learned.quality_weights;
        let parts: Vec<String> = QUALITY_MEMBERS
            .iter()
            .zip(w)
            .filter(|(_, w)| **w > 0.0)
            .map(|(m, w)| format!("{m} {w:.2}"))
            .collect();
        let history = self.chosen("history").unwrap_or_default();
        format!(
            "weights {} (validation NDCG@10 {:.4}); history {history}",
            parts.join(", "),
            self.learned.quality_validation_ndcg
        )
    }

    /// The named model, the seconds its fit took, and its chosen setting; `None` for EASE when it
    /// was not fitted, and for a name `reco evaluate` does not know. The models are borrowed.
    pub fn model<'a>(
        &'a self,
        name: &str,
        data: &EvalData,
    ) -> Option<(Box<dyn Scorer + 'a>, f64, Option<String>)> {
        let m = &self.members;
        let single = |s: Box<dyn Scorer + 'a>, step: &str| (s, self.step_seconds(step), None);
        let (scorer, seconds, setting): (Box<dyn Scorer + 'a>, f64, Option<String>) = match name {
            "popularity" => {
                let started = Instant::now();
                let plain = super::tune::popularity_of(data, None);
                (Box::new(plain), started.elapsed().as_secs_f64(), None)
            }
            "recent" => single(Box::new(&m.recent), "popularity"),
            "itemknn" => single(Box::new(&m.itemknn), "item-to-item"),
            "ease" => match &m.ease {
                Some(ease) => single(Box::new(ease), "ease"),
                None => {
                    let (model, seconds, setting) = self.ease_peer(data)?;
                    (Box::new(model), *seconds, Some(setting.clone()))
                }
            },
            "rp3beta" => {
                let (model, seconds, setting) = self.rp3beta(data);
                (Box::new(model), *seconds, Some(setting.clone()))
            }
            "als" => single(Box::new(&m.als), "als"),
            "bpr" => single(Box::new(&m.bpr), "bpr"),
            "content" => single(Box::new(&m.content), "content"),
            "fast" => {
                // Item-to-item (its nearest neighbours) plus 0.1 of the trending popularity: the
                // server's `fast` formula.
                let nearest = algo::itemknn::Nearest {
                    knn: &m.itemknn,
                    cap: algo::itemknn::FAST_NEIGHBOURS,
                };
                let blend = Blend {
                    members: vec![(Box::new(nearest), 1.0), (Box::new(&m.recent), 0.1)],
                    diversity: None,
                };
                (Box::new(blend), self.seconds, None)
            }
            "quality" => {
                let mut blend = blend(m, &self.learned.quality_weights);
                blend.diversity = Some(Diversity {
                    categories: data
                        .item_texts
                        .iter()
                        .map(|t| t.categories.clone())
                        .collect(),
                    strength: QUALITY_DIVERSITY,
                });
                (Box::new(blend), self.seconds, Some(self.weights()))
            }
            "enhanced" => {
                let enhanced = algo::enhanced::Enhanced {
                    als: m.als.clone(),
                    bpr: m.bpr.clone(),
                    itemknn: m.itemknn.clone(),
                    content: m.content.clone(),
                    ease: m.ease.clone(),
                    popularity: m.recent.scores.clone(),
                    popular_order: self.extras.popular_order.clone(),
                    categories: self.extras.categories.clone(),
                    ranker: self.learned.ranker.clone(),
                };
                (Box::new(enhanced), self.seconds, None)
            }
            "smart" => {
                // MMR needs the whole list, which a routed scorer does not own: relevance order.
                let established = Box::new(blend(m, &self.learned.quality_weights));
                let smart = smart(m, established, self.learned.short_route);
                let route = format!("short histories: {:?}", self.learned.short_route);
                (Box::new(smart), self.seconds, Some(route.to_lowercase()))
            }
            _ => return None,
        };
        let setting = setting.or_else(|| self.chosen(name));
        Some((scorer, seconds, setting))
    }
}
