//! A seeded generator of a realistic demo catalogue: items in categories with long-tail popularity,
//! users with power-law activity and taste clusters (each cluster prefers a few categories). The
//! embedded default imports it into an empty database; tests use it for data with real structure.

use chrono::{Duration, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::dataset::Dataset;
use crate::store::{Feedback, Item, User};

const CATEGORIES: [&str; 12] = [
    "science",
    "history",
    "travel",
    "cooking",
    "music",
    "film",
    "sports",
    "technology",
    "health",
    "finance",
    "art",
    "nature",
];
const COUNTRIES: [&str; 5] = ["de", "fr", "us", "jp", "br"];
const ADJECTIVES: [&str; 16] = [
    "Hidden", "Quiet", "Bright", "Lost", "Modern", "Ancient", "Wild", "Simple", "Golden", "Urban",
    "Deep", "Open", "Little", "Great", "Secret", "Northern",
];
const NOUNS: [&str; 16] = [
    "Guide", "Story", "Journey", "Notes", "Atlas", "Kitchen", "Season", "Machine", "Garden",
    "Market", "River", "Signal", "Workshop", "Archive", "Frontier", "Harbor",
];

/// Size and shape of the demo catalogue.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub items: usize,
    pub users: usize,
    pub clusters: usize,
    /// Events of the most active user; activity falls off as a power law.
    pub max_events_per_user: usize,
    pub min_events_per_user: usize,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self {
            items: 3000,
            users: 1000,
            clusters: 8,
            max_events_per_user: 300,
            min_events_per_user: 3,
        }
    }
}

/// Demo user ids are `user-1` … `user-N`; `user-1` is the most active.
pub fn user_id(i: usize) -> String {
    format!("user-{}", i + 1)
}

pub fn item_id(i: usize) -> String {
    format!("item-{}", i + 1)
}

/// Generates the catalogue; the same seed always gives the same data, with its times spread over
/// the 365 days before today (UTC): none lies in the future, which the API (and an import of an
/// export) would refuse.
pub fn generate(spec: &DemoSpec, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let today = Utc::now()
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let epoch = today - Duration::days(365);
    let items: Vec<Item> = (0..spec.items)
        .map(|i| {
            let primary = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
            let mut categories = vec![primary.to_string()];
            if rng.random_bool(0.3) {
                let second = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                if second != primary {
                    categories.push(second.to_string());
                }
            }
            let title = format!(
                "{} {} of {}",
                ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
                NOUNS[rng.random_range(0..NOUNS.len())],
                capitalise(primary)
            );
            Item {
                id: item_id(i),
                description: format!("A {} piece about {}.", categories.join(" and "), title.to_lowercase()),
                title,
                labels: json!({ "quality": rng.random_range(1..=5), "length_minutes": rng.random_range(2..=90) }),
                categories,
                timestamp: epoch + Duration::minutes(rng.random_range(0..525_600)),
                hidden: rng.random_bool(0.01),
            }
        })
        .collect();

    // Each taste cluster prefers two or three distinct categories.
    let cluster_prefs: Vec<Vec<&str>> = (0..spec.clusters)
        .map(|_| {
            let k = rng.random_range(2..=3);
            let mut prefs: Vec<&str> = Vec::with_capacity(k);
            while prefs.len() < k {
                let c = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                if !prefs.contains(&c) {
                    prefs.push(c);
                }
            }
            prefs
        })
        .collect();
    // Long-tail item appeal: Zipf-like weights by a random rank.
    let appeal: Vec<f64> = (0..spec.items)
        .map(|_| 1.0 / (1.0 + rng.random_range(0..spec.items) as f64).powf(0.8))
        .collect();
    let by_category: Vec<Vec<usize>> = CATEGORIES
        .iter()
        .map(|c| {
            (0..spec.items)
                .filter(|&i| items[i].categories.iter().any(|x| x == c))
                .collect()
        })
        .collect();

    let mut users = Vec::with_capacity(spec.users);
    let mut feedback = Vec::new();
    for u in 0..spec.users {
        let cluster = rng.random_range(0..spec.clusters);
        let id = user_id(u);
        users.push(User {
            id: id.clone(),
            labels: json!({ "cluster": cluster, "country": COUNTRIES[rng.random_range(0..COUNTRIES.len())] }),
            created_at: epoch + Duration::minutes(rng.random_range(0..525_600)),
        });
        // Power-law activity: user k has about max / (k+1)^0.7 events.
        let events = ((spec.max_events_per_user as f64) / ((u + 1) as f64).powf(0.7))
            .max(spec.min_events_per_user as f64) as usize;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..events {
            let pool: &[usize] = if rng.random_bool(0.85) {
                let cat = cluster_prefs[cluster][rng.random_range(0..cluster_prefs[cluster].len())];
                &by_category[CATEGORIES
                    .iter()
                    .position(|c| *c == cat)
                    .expect("known category")]
            } else {
                &[]
            };
            let item = pick_weighted(&mut rng, pool, &appeal);
            if !seen.insert(item) {
                continue;
            }
            let at = epoch + Duration::minutes(rng.random_range(0..525_600));
            let mut push = |ty: &str, value: f64| {
                feedback.push(Feedback {
                    user_id: id.clone(),
                    item_id: item_id(item),
                    feedback_type: ty.into(),
                    value,
                    timestamp: at,
                });
            };
            push("view", 1.0);
            if rng.random_bool(0.35) {
                push("like", 1.0);
            }
            if rng.random_bool(0.05) {
                push("purchase", 1.0);
            }
        }
    }
    Dataset {
        items,
        users,
        feedback,
    }
}

/// Picks an index weighted by `appeal` (all weights are at most 1), from `pool` (or from all items
/// when `pool` is empty), by rejection sampling.
fn pick_weighted(rng: &mut ChaCha8Rng, pool: &[usize], appeal: &[f64]) -> usize {
    loop {
        let i = if pool.is_empty() {
            rng.random_range(0..appeal.len())
        } else {
            pool[rng.random_range(0..pool.len())]
        };
        if rng.random::<f64>() < appeal[i] {
            return i;
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_with_power_law_activity() {
        let spec = DemoSpec {
            items: 300,
            users: 100,
            ..Default::default()
        };
        let a = generate(&spec, 7);
        let b = generate(&spec, 7);
        assert_eq!(a.feedback, b.feedback);
        assert_eq!(a.items.len(), 300);
        let count = |u: &str| {
            a.feedback
                .iter()
                .filter(|f| f.user_id == u && f.feedback_type == "view")
                .count()
        };
        assert!(
            count("user-1") > 5 * count("user-100"),
            "{} vs {}",
            count("user-1"),
            count("user-100")
        );
        // Taste clusters: most of a user's views fall in their cluster's few categories.
        let mut per_category = std::collections::HashMap::<&str, usize>::new();
        let views: Vec<_> = a
            .feedback
            .iter()
            .filter(|f| f.user_id == "user-1" && f.feedback_type == "view")
            .collect();
        for f in &views {
            let item = a.items.iter().find(|i| i.id == f.item_id).unwrap();
            *per_category.entry(item.categories[0].as_str()).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_category.into_values().collect();
        counts.sort_unstable_by(|x, y| y.cmp(x));
        let top3: usize = counts.iter().take(3).sum();
        // Uniform tastes would put about a third of the views in the top three of twelve categories.
        assert!(
            top3 * 10 > views.len() * 5,
            "top-3 categories hold {top3} of {} views",
            views.len()
        );
    }
}
