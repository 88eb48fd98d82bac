//! A generated implicit-feedback world shaped like a news or content feed, the second data set of
//! `reco evaluate` (MovieLens is explicit ratings of a fixed catalogue): views, likes and purchases;
//! items published over the whole period that draw attention for a few days and fade (a few
//! evergreen ones from before it); users who arrive over the period, most with one to three events
//! and a few with hundreds (activity `P(n >= k) = 1/k`), whose tastes drift while they read; and no
//! repeated (user, item) pair. Each event picks a topic (mostly one of the user's two favourites),
//! then an item of that topic already published, with odds of its appeal × freshness ×
//! `exp(taste · item)`; the closer the match, the likelier a like or a purchase instead of a view.
//!
//! Seeded and deterministic, generated in memory (about a second at the default size).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dataset;
use crate::store::{Feedback, Item, User};

/// The size of a world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub items: usize,
    pub users: usize,
    /// The period users are active over.
    pub days: u32,
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            items: 2000,
            users: 15_000,
            days: 120,
            seed: 1,
        }
    }
}

const TOPICS: usize = 24;
/// Dimensions of tastes and items' traits.
const DIM: usize = 8;
/// Most events of one user.
const MAX_EVENTS: f64 = 300.0;
/// Share of the catalogue published before the period: evergreen items that fade over months.
const EVERGREEN: f64 = 0.03;
/// Share of events on one of the user's two favourite topics.
const FAVOURITE: f64 = 0.7;
/// Chance per event that one favourite topic is replaced by another (tastes drift).
const TOPIC_CHANGE: f64 = 0.03;
const DAY: f64 = 86_400.0;
/// 2026-01-01.
const EPOCH: i64 = 1_767_225_600;

const WORDS: [&str; 48] = [
    "election", "budget", "league", "transfer", "recipe", "garden", "startup", "chip", "climate",
    "storm", "museum", "concert", "vaccine", "clinic", "rocket", "orbit", "market", "rates",
    "festival", "premiere", "court", "verdict", "school", "campus", "housing", "rent", "travel",
    "island", "fashion", "runway", "console", "release", "bridge", "transit", "harvest", "wine",
    "derby", "final", "summit", "treaty", "novel", "poetry", "privacy", "network", "ocean", "reef",
    "marathon", "record",
];

/// One item's traits.
struct Draft {
    topic: usize,
    traits: [f32; DIM],
    /// Seconds since the start of the period (negative: before it).
    born: f64,
    /// Seconds for its appeal to fall by e.
    life: f64,
    appeal: f64,
}

/// Generates a world of `spec`'s size: items, users and their feedback, ordered by time within
/// each user.
pub fn generate(spec: Spec) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let period = f64::from(spec.days) * DAY;
    let centres: Vec<[f32; DIM]> = (0..TOPICS).map(|_| normal_vec(&mut rng, 1.0)).collect();
    let drafts: Vec<Draft> = (0..spec.items)
        .map(|_| {
            let topic = rng.random_range(0..TOPICS);
            let mut traits = normal_vec(&mut rng, 0.6);
            add(&mut traits, &centres[topic], 1.0);
            let (born, life) = if rng.random_bool(EVERGREEN) {
                (
                    -rng.random_range(0.0..60.0) * DAY,
                    rng.random_range(10.0..45.0) * DAY,
                )
            } else {
                // A few days of attention, some items a day, some two weeks (log-normal).
                let days = (3f64.ln() + 0.7 * normal(&mut rng)).exp();
                (rng.random_range(0.0..period), days * DAY)
            };
            let u: f64 = rng.random_range(1e-3..1.0);
            Draft {
                topic,
                traits,
                born,
                life,
                appeal: u.powf(-0.7).min(50.0),
            }
        })
        .collect();
    // Each topic's items by publication time.
    let mut by_topic: Vec<Vec<u32>> = vec![Vec::new(); TOPICS];
    for (i, d) in drafts.iter().enumerate() {
        by_topic[d.topic].push(i as u32);
    }
    for list in &mut by_topic {
        list.sort_by(|&a, &b| drafts[a as usize].born.total_cmp(&drafts[b as usize].born));
    }
    let start = DateTime::<Utc>::from_timestamp(EPOCH, 0).expect("valid time");
    let at = |seconds: f64| start + chrono::Duration::seconds(seconds as i64);
    let items = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| item(i, d, &mut rng, at(d.born)))
        .collect();
    let mut users = Vec::with_capacity(spec.users);
    let mut feedback = Vec::new();
    let mut seen = HashSet::new();
    let mut odds = Vec::new();
    for u in 0..spec.users {
        let id = format!("u{u}");
        let n = (1.0 / rng.random_range(1e-9..1.0f64))
            .floor()
            .min(MAX_EVENTS) as usize;
        let arrive = rng.random_range(0.0..period);
        let span = (n as f64 * exponential(&mut rng) * DAY).min(period - arrive);
        let mut times: Vec<f64> = (0..n)
            .map(|_| arrive + rng.random_range(0.0..=1.0) * span)
            .collect();
        times.sort_by(f64::total_cmp);
        let mut favourites = [rng.random_range(0..TOPICS), rng.random_range(0..TOPICS)];
        let mut taste = normal_vec(&mut rng, 0.5);
        add(&mut taste, &centres[favourites[0]], 1.0);
        seen.clear();
        for &t in &times {
            drift(&mut favourites, &mut taste, &centres, &mut rng);
            let topic = if rng.random_bool(FAVOURITE) {
                favourites[rng.random_range(0..2)]
            } else {
                rng.random_range(0..TOPICS)
            };
            let Some(i) = pick(
                &by_topic[topic],
                &drafts,
                &taste,
                t,
                &seen,
                &mut odds,
                &mut rng,
            ) else {
                continue;
            };
            seen.insert(i);
            let d = &drafts[i as usize];
            feedback.push(Feedback {
                user_id: id.clone(),
                item_id: format!("n{i}"),
                feedback_type: kind(&taste, d, &mut rng).to_string(),
                value: 1.0,
                timestamp: at(t),
            });
            // Reading moves the taste a little toward what was read.
            add(&mut taste, &d.traits, 0.03);
            taste.iter_mut().for_each(|x| *x *= 0.97);
        }
        users.push(User {
            id,
            labels: serde_json::json!({}),
            created_at: at(arrive),
        });
    }
    Dataset {
        items,
        users,
        feedback,
    }
}

/// With a small chance per event, a new interest: one favourite topic replaced by another, the
/// taste half the way to its centre.
fn drift(
    favourites: &mut [usize; 2],
    taste: &mut [f32; DIM],
    centres: &[[f32; DIM]],
    rng: &mut ChaCha8Rng,
) {
    if rng.random_bool(TOPIC_CHANGE) {
        let slot = rng.random_range(0..2);
        favourites[slot] = rng.random_range(0..TOPICS);
        let centre = centres[favourites[slot]];
        taste
            .iter_mut()
            .zip(centre)
            .for_each(|(x, c)| *x = 0.5 * (*x + c));
    }
}

/// What reading `d` with `taste` leaves: the closer the match, the likelier a like or a purchase.
fn kind(taste: &[f32; DIM], d: &Draft, rng: &mut ChaCha8Rng) -> &'static str {
    let matched = sigmoid(dot(taste, &d.traits) / (DIM as f32).sqrt() - 1.0);
    let r: f32 = rng.random();
    if r < 0.08 * matched {
        "purchase"
    } else if r < 0.4 * matched {
        "like"
    } else {
        "view"
    }
}

/// An item of `topic` published by `t` and not in `seen`, with odds of appeal × freshness ×
/// `exp(taste · traits)`; `None` when the topic has nothing published yet or unseen.
fn pick(
    topic: &[u32],
    drafts: &[Draft],
    taste: &[f32; DIM],
    t: f64,
    seen: &HashSet<u32>,
    odds: &mut Vec<(u32, f64)>,
    rng: &mut ChaCha8Rng,
) -> Option<u32> {
    odds.clear();
    let published = topic.partition_point(|&i| drafts[i as usize].born <= t);
    let scale = 1.0 / (DIM as f32).sqrt();
    let mut total = 0.0;
    for &i in &topic[..published] {
        let d = &drafts[i as usize];
        let fresh = (-(t - d.born) / d.life).exp();
        if fresh < 1e-3 || seen.contains(&i) {
            continue;
        }
        let w = d.appeal * fresh * f64::from((dot(taste, &d.traits) * scale).exp());
        total += w;
        odds.push((i, total));
    }
    if odds.is_empty() {
        return None;
    }
    let x = rng.random_range(0.0..total);
    let at = odds.partition_point(|&(_, cumulative)| cumulative <= x);
    Some(odds[at.min(odds.len() - 1)].0)
}

/// The catalogue entry of draft `i`: its topic as category, a title and a description of its
/// topic's words and a few others.
fn item(i: usize, d: &Draft, rng: &mut ChaCha8Rng, published: DateTime<Utc>) -> Item {
    let topic_word = |k: usize| WORDS[(d.topic * 2 + k) % WORDS.len()];
    let mut words = |n: usize| -> Vec<&str> {
        (0..n)
            .map(|_| match rng.random_range(0..3) {
                0 => WORDS[rng.random_range(0..WORDS.len())],
                k => topic_word(k - 1),
            })
            .collect()
    };
    Item {
        id: format!("n{i}"),
        categories: vec![format!("topic-{}", d.topic)],
        labels: serde_json::json!({}),
        title: words(4).join(" "),
        description: words(12).join(" "),
        timestamp: published,
        hidden: false,
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller: one normal draw is all a generator needs, not a distributions crate.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn exponential(rng: &mut ChaCha8Rng) -> f64 {
    -rng.random_range(f64::EPSILON..1.0).ln()
}

fn normal_vec(rng: &mut ChaCha8Rng, sd: f64) -> [f32; DIM] {
    std::array::from_fn(|_| (normal(rng) * sd) as f32)
}

fn add(x: &mut [f32; DIM], y: &[f32; DIM], scale: f32) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += scale * b);
}

fn dot(x: &[f32; DIM], y: &[f32; DIM]) -> f32 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_feed_shaped_world() {
        let spec = Spec {
            items: 800,
            users: 3000,
            days: 60,
            seed: 3,
        };
        let world = generate(spec);
        assert_eq!(world.items.len(), 800);
        assert_eq!(world.users.len(), 3000);
        let mut pairs = HashSet::new();
        let mut per_user: HashMap<&str, usize> = HashMap::new();
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        let published: HashMap<&str, DateTime<Utc>> = world
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.timestamp))
            .collect();
        for f in &world.feedback {
            assert!(pairs.insert((&f.user_id, &f.item_id)), "no repeated pair");
            assert!(
                f.timestamp >= published[f.item_id.as_str()],
                "read after publication"
            );
            *per_user.entry(&f.user_id).or_default() += 1;
            *kinds.entry(&f.feedback_type).or_default() += 1;
        }
        // Many one-to-three event users, and a long tail.
        let short = per_user.values().filter(|&&n| n <= 3).count();
        let longest = per_user.values().copied().max().unwrap_or(0);
        assert!(short * 2 > per_user.len(), "{short} of {}", per_user.len());
        assert!(longest >= 50, "{longest}");
        // Views most, then likes, then purchases.
        assert!(
            kinds["view"] > kinds["like"] && kinds["like"] > kinds["purchase"],
            "{kinds:?}"
        );
        assert!(kinds["purchase"] > 0);
        // Items published over the period: the newest tenth of events mostly read items from
        // the newest half of the period.
        let mut events: Vec<&Feedback> = world.feedback.iter().collect();
        events.sort_by_key(|f| f.timestamp);
        let late = &events[events.len() * 9 / 10..];
        let middle = DateTime::<Utc>::from_timestamp(EPOCH, 0).unwrap()
            + chrono::Duration::days(i64::from(spec.days) / 2);
        let fresh = late
            .iter()
            .filter(|f| published[f.item_id.as_str()] >= middle)
            .count();
        assert!(fresh * 10 > late.len() * 7, "{fresh} of {}", late.len());
        let again = generate(spec);
        assert_eq!(again.feedback.len(), world.feedback.len(), "seeded");
        assert!(
            again
                .feedback
                .iter()
                .zip(&world.feedback)
                .all(|(a, b)| a == b)
        );
    }
}
