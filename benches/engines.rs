//! In-process recommend latency per engine on a synthetic catalogue of 100,000 items with 64-factor
//! models (issue targets: `fast` p99 under 0.5 ms, `quality` and `enhanced` under 5 ms, one core).
//!
//! `cargo bench --bench engines` runs it in full: it trains on 2 million interactions, prints each
//! engine's p50/p99 over single calls (criterion measures means, not tails), then criterion's own
//! measurement. Without `--bench` (as `cargo test --all-targets` runs it) a small catalogue checks
//! that the benchmark itself works.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use reco::data::synthetic::{Spec, World, memory};
use reco::engine::{EngineKind, Query, Who};

const ENGINES: [EngineKind; 5] = [
    EngineKind::Fast,
    EngineKind::Quality,
    EngineKind::Enhanced,
    EngineKind::Smart,
    EngineKind::Popularity,
];

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let spec = if let Some(spec) = Spec::from_env() {
        spec
    } else if full {
        Spec {
            items: 100_000,
            users: 100_000,
            interactions: 2_000_000,
            seed: 7,
        }
    } else {
        Spec {
            items: 2_000,
            users: 500,
            interactions: 10_000,
            seed: 7,
        }
    };
    let world = World::generate(spec);
    let started = Instant::now();
    let snapshot = reco::train::fit(world.training_data(), 1, 14.0);
    println!(
        "catalogue: {} items, {} users, {} interactions, {} factors; trained in {:.1} s",
        world.items.len(),
        world.user_ids.len(),
        world.interactions.len(),
        snapshot.als.factors,
        started.elapsed().as_secs_f64()
    );
    let engine = world.engine();
    engine.install(Arc::new(snapshot), 0);
    if let Some((rss, peak)) = memory() {
        println!(
            "memory: {} MiB resident, {} MiB peak",
            rss >> 20,
            peak >> 20
        );
    }
    // Users with some history, as most traffic is.
    let mut counts = vec![0usize; world.user_ids.len()];
    for &(u, ..) in &world.interactions {
        counts[u as usize] += 1;
    }
    let users: Vec<&str> = (0..world.user_ids.len())
        .filter(|&u| counts[u] >= 10)
        .take(1000)
        .map(|u| &*world.user_ids[u])
        .collect();
    assert!(!users.is_empty());
    let q = Query {
        n: 10,
        ..Default::default()
    };
    println!(
        "{:<12} {:>9} {:>9} {:>9}",
        "engine", "p50 (ms)", "p99 (ms)", "calls"
    );
    for kind in ENGINES {
        let rounds = if full { 3 } else { 1 };
        let mut times = Vec::with_capacity(users.len() * rounds);
        for _ in 0..rounds {
            for &u in &users {
                let t = Instant::now();
                let rec = engine.recommend(Who::User(u), &q, kind);
                times.push(t.elapsed());
                assert_eq!(rec.items.len(), 10, "{kind:?} for {u}");
                black_box(rec);
            }
        }
        times.sort_unstable();
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>9}",
            kind.name(),
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            times.len()
        );
    }
    if !full {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for kind in ENGINES {
        let mut next = users.iter().cycle();
        c.bench_function(&format!("recommend/{}", kind.name()), |b| {
            b.iter(|| {
                let u = next.next().expect("endless");
                black_box(engine.recommend(Who::User(u), &q, kind))
            })
        });
    }
    c.final_summary();
}
