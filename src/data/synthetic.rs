//! Synthetic catalogues at benchmark scale (100,000 items, a million users, ten million
//! interactions): items in categories with text for the content model, users in taste clusters with
//! power-law activity, long-tail item popularity. Generated in memory from a seed, for the latency
//! and training benchmarks; the demo catalogue (`super::demo`) is the small, stored counterpart.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::algo::content::ItemText;
use crate::engine::Engine;
use crate::policy::FeedbackPolicy;
use crate::store::{Feedback, Item};
use crate::train::TrainingData;

const CATEGORIES: usize = 20;
const WORDS: [&str; 32] = [
    "atlas", "river", "signal", "garden", "machine", "harbor", "season", "market", "frontier",
    "archive", "kitchen", "journey", "story", "notes", "guide", "workshop", "quiet", "bright",
    "ancient", "modern", "wild", "golden", "urban", "secret", "northern", "little", "great",
    "deep", "open", "lost", "hidden", "simple",
];

/// Size of a synthetic world.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub items: usize,
    pub users: usize,
    /// Interactions in all, approximately (duplicates of a user-item pair are dropped).
    pub interactions: usize,
    pub seed: u64,
}

impl Spec {
    /// `RECO_BENCH_SPEC=items,users,interactions` overrides a benchmark's size.
    pub fn from_env() -> Option<Spec> {
        let raw = std::env::var("RECO_BENCH_SPEC").ok()?;
        let n: Vec<usize> = raw
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        match n[..] {
            [items, users, interactions] => Some(Spec {
                items,
                users,
                interactions,
                seed: 7,
            }),
            _ => None,
        }
    }
}

/// Items, users and their interactions.
pub struct World {
    pub items: Vec<Item>,
    pub user_ids: Vec<Arc<str>>,
    /// (user, item, weight, unix seconds), grouped by user.
    pub interactions: Vec<(u32, u32, f32, i64)>,
}

/// Most interactions of one user.
const MAX_PER_USER: usize = 2000;

impl World {
    pub fn generate(spec: Spec) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let epoch: i64 = 1_767_225_600; // 2026-01-01
        let start = DateTime::<Utc>::from_timestamp(epoch, 0).expect("valid time");
        let mut by_category: Vec<Vec<u32>> = vec![Vec::new(); CATEGORIES];
        let items: Vec<Item> = (0..spec.items)
            .map(|i| {
                let c = rng.random_range(0..CATEGORIES);
                by_category[c].push(i as u32);
                let mut categories = vec![format!("cat-{c}")];
                if rng.random_bool(0.3) {
                    categories.push(format!("cat-{}", rng.random_range(0..CATEGORIES)));
                }
                // Words of two parts: a vocabulary of about a thousand, like real titles'.
                let mut words = |n: usize| -> String {
                    (0..n)
                        .map(|_| {
                            let a = WORDS[rng.random_range(0..WORDS.len())];
                            let b = WORDS[rng.random_range(0..WORDS.len())];
                            format!("{a}{b}")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                Item {
                    id: format!("item-{i}"),
                    categories,
                    // Labels of a realistic size (a year and a link, like MovieLens'), so that
                    // the serving state measured at scale holds them; training reads none.
                    labels: serde_json::json!({
                        "year": 1950 + i % 70,
                        "url": format!("https://example.com/items/{i}"),
                    }),
                    title: words(3),
                    description: words(8),
                    timestamp: start + chrono::Duration::minutes(rng.random_range(0..259_200)),
                    hidden: false,
                }
            })
            .collect();
        let user_ids: Vec<Arc<str>> = (0..spec.users)
            .map(|u| Arc::from(format!("user-{u}")))
            .collect();
        let mean = spec.interactions as f64 / spec.users.max(1) as f64;
        let mut interactions = Vec::with_capacity(spec.interactions + spec.interactions / 10);
        let mut seen = HashSet::new();
        for u in 0..spec.users as u32 {
            // Three favourite categories; power-law activity with the requested mean
            // (E[U^-1/2] = 2).
            let favourites: [usize; 3] = std::array::from_fn(|_| rng.random_range(0..CATEGORIES));
            let draw: f64 = rng.random_range(1e-6..1.0);
            let n = ((mean * 0.5 / draw.sqrt()).round() as usize).clamp(1, MAX_PER_USER);
            seen.clear();
            for _ in 0..n {
                let c = if rng.random_bool(0.8) {
                    favourites[rng.random_range(0..3)]
                } else {
                    rng.random_range(0..CATEGORIES)
                };
                let pool = &by_category[c];
                if pool.is_empty() {
                    continue;
                }
                // Long tail: low positions of a category are its popular items.
                let x: f64 = rng.random();
                let item = pool[((x * x * x) * pool.len() as f64) as usize % pool.len()];
                if seen.insert(item) {
                    let t = epoch + rng.random_range(0..15_552_000);
                    let weight = if rng.random_bool(0.3) { 1.0 } else { 0.1 };
                    interactions.push((u, item, weight, t));
                }
            }
        }
        World {
            items,
            user_ids,
            interactions,
        }
    }

    /// What a training run would read from the store.
    pub fn training_data(&self) -> TrainingData {
        TrainingData {
            n_items: self.items.len(),
            item_ids: self
                .items
                .iter()
                .map(|i| Arc::from(i.id.as_str()))
                .collect(),
            user_rows: self
                .user_ids
                .iter()
                .enumerate()
                .map(|(u, id)| (id.clone(), u as u32))
                .collect(),
            interactions: self.interactions.clone(),
            texts: self
                .items
                .iter()
                .map(|i| ItemText {
                    title: i.title.clone(),
                    description: i.description.clone(),
                    categories: i.categories.clone(),
                    labels: Vec::new(),
                })
                .collect(),
        }
    }

    /// An engine holding the catalogue and every interaction (as `view`, or `like` for weight 1),
    /// as a server would after loading the store.
    pub fn engine(&self) -> Engine {
        let engine = Engine::new(FeedbackPolicy::default(), 0.1);
        engine.upsert_items(&self.items);
        let now = Utc::now();
        for chunk in self.interactions.chunks(100_000) {
            let rows: Vec<Feedback> = chunk
                .iter()
                .map(|&(u, i, w, _)| Feedback {
                    user_id: self.user_ids[u as usize].to_string(),
                    item_id: self.items[i as usize].id.clone(),
                    feedback_type: if w >= 1.0 { "like" } else { "view" }.into(),
                    value: 1.0,
                    timestamp: now,
                })
                .collect();
            engine.add_feedback(&rows);
        }
        engine.rerank();
        engine
    }
}

/// Resident memory of this process now and at its peak, in bytes (Linux; `None` elsewhere).
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_shape() {
        let w = World::generate(Spec {
            items: 500,
            users: 200,
            interactions: 4000,
            seed: 1,
        });
        assert_eq!(w.items.len(), 500);
        let n = w.interactions.len() as f64;
        // Near the request, less the repeated pairs a small catalogue produces.
        assert!((2000.0..=4400.0).contains(&n), "{n}");
        let mut pairs: Vec<(u32, u32)> = w.interactions.iter().map(|x| (x.0, x.1)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), w.interactions.len(), "no duplicate pairs");
        let again = World::generate(Spec {
            items: 500,
            users: 200,
            interactions: 4000,
            seed: 1,
        });
        assert_eq!(again.interactions, w.interactions, "seeded");
    }

    /// `fast` answers by its definition: unseen items by the summed similarity of their
    /// neighbour entries from the user's liked items (the first 200) over the best sum, plus a tenth of
    /// popularity over the most popular's, higher first and ties by index. Checked for every user
    /// of a small trained world, in which most users add as many entries as the catalogue has
    /// items (the sums keep no touched list) and the rest fewer (they keep it). Here because the
    /// world trains as the server does (`train`) into an engine, which sit below this module.
    #[test]
    fn fast_answers_by_its_definition_with_and_without_the_touched_list() {
        use crate::algo::{rank_index, rank_key};
        use crate::engine::{EngineKind, Query, Who};
        let world = World::generate(Spec {
            items: 1500,
            users: 200,
            interactions: 8000,
            seed: 5,
        });
        let snap = Arc::new(crate::train::fit(
            world.training_data(),
            1,
            crate::eval::Tuning::none(),
        ));
        let engine = world.engine();
        engine.install(snap.clone(), 0);
        let (n, pop) = (snap.n_items, &snap.popularity.scores);
        let pop_scale = 0.1 / pop[snap.popular_order[0] as usize].max(f32::MIN_POSITIVE);
        let q = Query {
            n: 10,
            ..Query::default()
        };
        let (mut without_list, mut with_list) = (0, 0);
        for (u, id) in (0u32..).zip(&world.user_ids) {
            // The world's rows are likes and views, both positive under the default policy (a
            // view weighs less, which `fast` does not read): every row's item is liked and seen.
            let mut liked: Vec<u32> = world
                .interactions
                .iter()
                .filter(|r| r.0 == u)
                .map(|r| r.1)
                .collect();
            liked.sort_unstable();
            let seen: HashSet<u32> = liked.iter().copied().collect();
            let mut sums = vec![0f32; n];
            let mut adds = 0;
            // No user here likes 200 items, `fast`'s cap on the liked items it gathers from.
            assert!(liked.len() < 200);
            for &j in &liked {
                for &(i, sim) in &snap.itemknn.neighbours[j as usize] {
                    sums[i as usize] += sim;
                    adds += 1;
                }
            }
            *if adds >= n {
                &mut without_list
            } else {
                &mut with_list
            } += 1;
            let best = sums
                .iter()
                .copied()
                .fold(0.0, f32::max)
                .max(f32::MIN_POSITIVE);
            let mut want: Vec<(u64, f64)> = (0..n as u32)
                .filter(|i| !seen.contains(i))
                .map(|i| {
                    let score = pop[i as usize] * pop_scale + sums[i as usize] / best;
                    (rank_key(score, i), f64::from(score))
                })
                .collect();
            want.sort_unstable_by_key(|&(key, _)| key);
            let want: Vec<(&str, f64)> = want[..10]
                .iter()
                .map(|&(key, score)| (&*snap.item_ids[rank_index(key) as usize], score))
                .collect();
            let got = engine.inputs(Who::User(id)).recommend(&q, EngineKind::Fast);
            let got: Vec<(&str, f64)> = got.items.iter().map(|s| (&*s.id, s.score)).collect();
            assert_eq!(got, want, "user {id}");
        }
        assert!(
            without_list > 0 && with_list > 0,
            "{without_list} users without the touched list, {with_list} with it"
        );
    }
}
