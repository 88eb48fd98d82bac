//! The orchestrator: what answers `engine=auto`, and the bookkeeping of experiments.
//!
//! Per request it picks an engine: the variant of the configured experiment that a stable hash of
//! the user id falls into, or, without an experiment, `smart`'s rules. It enforces a deadline (the
//! chosen engine runs on a blocking thread; when it misses the deadline the `fast` answer is
//! returned and counted, and the late answer still fills the cache), and it caches each user's
//! answer until that user's next feedback or the next trained snapshot.
//!
//! It also attributes clicks: the last recommendation shown to each user is remembered, and
//! positive feedback (the policy's rule) on one of its items within `orchestrator.click_window`
//! counts as a click for the variant that served it — the click-through signal an experiment is
//! judged by. It applies no writes: the catalogue (`crate::catalogue`) applies them to the engine
//! (whose generations make cached answers stale) and reports committed feedback here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quick_cache::sync::Cache;

use crate::config::{OrchestratorConfig, seconds};
use crate::engine::{Engine, EngineKind, Recommendation, Request, Who};
use crate::metrics::Metrics;
use crate::policy::FeedbackPolicy;
use crate::store::Feedback;
use crate::util::stable_hash;

/// The variant name used when no experiment is configured.
pub const DEFAULT_VARIANT: &str = "default";

/// An answer and how it was produced.
#[derive(Debug, Clone)]
pub struct Served {
    pub rec: Recommendation,
    /// The experiment variant (`auto` only).
    pub variant: Option<Arc<str>>,
    /// Answered from the per-user cache.
    pub cached: bool,
    /// The chosen engine missed the deadline and `fast` answered.
    pub fallback: bool,
}

struct Variant {
    name: Arc<str>,
    engine: EngineKind,
    /// Upper end (exclusive) of this variant's range of hash buckets.
    until: u64,
}

/// A cached answer and what it depends on.
struct Cached {
    request: Request,
    variant: Arc<str>,
    /// (snapshot version, user history generation, catalogue generation) when it was computed.
    freshness: (u64, u64, u64),
    rec: Recommendation,
}

/// The items last recommended to a user, for click attribution.
struct Impression {
    variant: Arc<str>,
    engine: EngineKind,
    at: Instant,
    /// Items not clicked yet (a click counts once).
    items: Mutex<Vec<Arc<str>>>,
}

pub struct Orchestrator {
    engine: Arc<Engine>,
    /// What counts as a click: positive feedback.
    policy: FeedbackPolicy,
    metrics: Arc<Metrics>,
    deadline: Option<Duration>,
    click_window: Duration,
    variants: Vec<Variant>,
    cache: Option<Arc<Cache<Arc<str>, Arc<Cached>>>>,
    impressions: Cache<Arc<str>, Arc<Impression>>,
}

/// Whether a cached answer fits a request: everything but the time-to-live cut-off, which moves
/// with the clock (an item expiring while its answer is cached stays until the next feedback or
/// training, minutes at most).
fn same_query(a: &Request, b: &Request) -> bool {
    a.n == b.n && a.categories == b.categories && a.exclude == b.exclude
}

impl Orchestrator {
    pub fn new(
        engine: Arc<Engine>,
        config: &OrchestratorConfig,
        policy: FeedbackPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut until = 0;
        let variants = config
            .variants
            .iter()
            .map(|v| {
                until += u64::from(v.share);
                Variant {
                    name: Arc::from(v.name.as_str()),
                    engine: v.engine,
                    until,
                }
            })
            .collect();
        let capacity = config.cache_size as usize;
        Self {
            engine,
            policy,
            metrics,
            deadline: (config.deadline > 0.0).then(|| seconds(config.deadline)),
            click_window: seconds(config.click_window),
            variants,
            cache: (capacity > 0).then(|| Arc::new(Cache::new(capacity))),
            impressions: Cache::new(capacity.max(10_000)),
        }
    }

    /// The variant and engine for a user: by the stable hash into the shares, or `smart`.
    pub fn assign(&self, user_id: &str) -> (Arc<str>, EngineKind) {
        let Some(total) = self.variants.last().map(|v| v.until) else {
            return (Arc::from(DEFAULT_VARIANT), EngineKind::Smart);
        };
        let bucket = stable_hash(user_id) % total;
        let v = self
            .variants
            .iter()
            .find(|v| bucket < v.until)
            .expect("the last variant ends at the total");
        (v.name.clone(), v.engine)
    }

    /// A recommendation for a user. `auto` goes through the experiment, the deadline and the
    /// cache; a named engine answers directly.
    pub async fn recommend(&self, user_id: &str, request: Request, kind: EngineKind) -> Served {
        let started = Instant::now();
        let served = if kind == EngineKind::Auto {
            self.auto(user_id, request).await
        } else {
            let rec = self
                .engine
                .recommend(Who::User(user_id), &request.query(), kind);
            Served {
                rec,
                variant: None,
                cached: false,
                fallback: false,
            }
        };
        self.record(user_id, &served, started.elapsed());
        served
    }

    /// A recommendation for an anonymous session (no cache, no experiment: `auto` is `smart`).
    pub fn recommend_session(
        &self,
        items: &[String],
        request: &Request,
        kind: EngineKind,
    ) -> Served {
        let started = Instant::now();
        let rec = self
            .engine
            .recommend(Who::Session(items), &request.query(), kind);
        let served = Served {
            rec,
            variant: None,
            cached: false,
            fallback: false,
        };
        self.metrics
            .record_engine(served.rec.engine.name(), started.elapsed().as_secs_f64());
        served
    }

    async fn auto(&self, user_id: &str, request: Request) -> Served {
        let (variant, kind) = self.assign(user_id);
        let user: Arc<str> = Arc::from(user_id);
        let freshness = self.engine.freshness(user_id);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&user))
            && hit.freshness == freshness
            && same_query(&hit.request, &request)
            && hit.variant == variant
        {
            return Served {
                rec: hit.rec.clone(),
                variant: Some(variant),
                cached: true,
                fallback: false,
            };
        }
        let compute = {
            let engine = self.engine.clone();
            let cache = self.cache.clone();
            let (user, variant, request) = (user.clone(), variant.clone(), request.clone());
            move || {
                let rec = engine.recommend(Who::User(&user), &request.query(), kind);
                if let Some(cache) = cache {
                    let entry = Cached {
                        request,
                        variant,
                        freshness,
                        rec: rec.clone(),
                    };
                    cache.insert(user, Arc::new(entry));
                }
                rec
            }
        };
        let Some(deadline) = self.deadline else {
            return Served {
                rec: compute(),
                variant: Some(variant),
                cached: false,
                fallback: false,
            };
        };
        let started = Instant::now();
        let task = tokio::task::spawn_blocking(compute);
        // The timer has millisecond resolution: an answer is also late when it arrived after the
        // deadline but before the timer fired.
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(rec)) if started.elapsed() <= deadline => Served {
                rec,
                variant: Some(variant),
                cached: false,
                fallback: false,
            },
            // Late (it keeps running and fills the cache) or failed: `fast` answers.
            _ => {
                self.metrics.record_fallback(&variant, kind.name());
                let rec =
                    self.engine
                        .recommend(Who::User(user_id), &request.query(), EngineKind::Fast);
                Served {
                    rec,
                    variant: Some(variant),
                    cached: false,
                    fallback: true,
                }
            }
        }
    }

    /// Metrics and the impression for click attribution.
    fn record(&self, user_id: &str, served: &Served, took: Duration) {
        let engine = served.rec.engine;
        self.metrics
            .record_engine(engine.name(), took.as_secs_f64());
        let Some(variant) = &served.variant else {
            return;
        };
        self.metrics
            .record_variant(variant, engine.name(), served.cached, took.as_secs_f64());
        if served.rec.items.is_empty() {
            return;
        }
        let impression = Impression {
            variant: variant.clone(),
            engine,
            at: Instant::now(),
            items: Mutex::new(served.rec.items.iter().map(|s| s.id.clone()).collect()),
        };
        self.metrics
            .record_impressions(variant, engine.name(), served.rec.items.len());
        self.impressions
            .insert(Arc::from(user_id), Arc::new(impression));
    }

    /// Committed feedback (already applied to the engine): counts clicks, i.e. positive feedback
    /// on an item recommended to that user within the click window.
    pub fn feedback_committed(&self, rows: &[Feedback]) {
        for f in rows {
            if !self.policy.is_positive(&f.feedback_type, f.value) {
                continue;
            }
            let Some(imp) = self.impressions.get(f.user_id.as_str()) else {
                continue;
            };
            if imp.at.elapsed() > self.click_window {
                continue;
            }
            let mut items = imp.items.lock();
            if let Some(pos) = items.iter().position(|i| **i == *f.item_id) {
                items.swap_remove(pos);
                self.metrics.record_click(&imp.variant, imp.engine.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VariantConfig;

    fn orchestrator(variants: Vec<VariantConfig>) -> Orchestrator {
        let config = OrchestratorConfig {
            variants,
            ..Default::default()
        };
        Orchestrator::new(
            Arc::new(Engine::new(FeedbackPolicy::default(), 0.0)),
            &config,
            FeedbackPolicy::default(),
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn variants_split_traffic_by_share_and_stay_put() {
        let o = orchestrator(vec![
            VariantConfig {
                name: "control".into(),
                engine: EngineKind::Quality,
                share: 75,
            },
            VariantConfig {
                name: "treatment".into(),
                engine: EngineKind::Enhanced,
                share: 25,
            },
        ]);
        let n = 20_000;
        let treated = (0..n)
            .filter(|u| &*o.assign(&format!("user-{u}")).0 == "treatment")
            .count();
        let share = treated as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        assert_eq!(o.assign("user-7"), o.assign("user-7"), "stable");
        let (name, engine) = o.assign("user-7");
        assert_eq!(
            engine,
            if &*name == "control" {
                EngineKind::Quality
            } else {
                EngineKind::Enhanced
            }
        );
        let plain = orchestrator(vec![]);
        assert_eq!(
            plain.assign("anyone"),
            (Arc::from(DEFAULT_VARIANT), EngineKind::Smart)
        );
    }
}
