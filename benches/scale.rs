//! Training at scale: a synthetic data set of 10 million interactions, 1 million users and 100,000
//! items (issue target: under 3 minutes on 2 cores), with peak memory, and the serving memory the
//! engine needs per million interactions.
//!
//! `cargo bench --bench scale` runs it in full. Without `--bench` (as `cargo test --all-targets`
//! runs it) a small data set checks that the benchmark itself works.

use std::sync::Arc;
use std::time::Instant;

use reco::data::synthetic::{Spec, World, memory};

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let spec = if let Some(spec) = Spec::from_env() {
        spec
    } else if full {
        Spec {
            items: 100_000,
            users: 1_000_000,
            interactions: 10_000_000,
            seed: 11,
        }
    } else {
        Spec {
            items: 1_000,
            users: 2_000,
            interactions: 20_000,
            seed: 11,
        }
    };
    let threads = rayon::current_num_threads();
    let started = Instant::now();
    let world = World::generate(spec);
    println!(
        "generated {} items, {} users, {} interactions in {:.1} s",
        world.items.len(),
        world.user_ids.len(),
        world.interactions.len(),
        started.elapsed().as_secs_f64()
    );
    let data = world.training_data();
    let (before, _) = memory().unwrap_or_default();
    let started = Instant::now();
    let snapshot = reco::train::fit(data, 1, 14.0);
    let fit_seconds = started.elapsed().as_secs_f64();
    let (after_fit, peak_fit) = memory().unwrap_or_default();
    println!(
        "trained every model on {threads} threads in {fit_seconds:.1} s; resident {} MiB before, \
         {} MiB after, peak {} MiB",
        mib(before),
        mib(after_fit),
        mib(peak_fit)
    );
    println!(
        "quality weights {:?}; ranker {:?}",
        snapshot.quality_weights, snapshot.ranker.weights
    );
    // Serving memory: the engine's live state (catalogue and every history) plus the snapshot.
    let snapshot = Arc::new(snapshot);
    let (base, _) = memory().unwrap_or_default();
    let engine = world.engine();
    let (with_state, _) = memory().unwrap_or_default();
    engine.install(snapshot.clone(), 0);
    let millions = world.interactions.len() as f64 / 1e6;
    let state = with_state.saturating_sub(base);
    println!(
        "serving state (catalogue and histories): {} MiB, {:.0} MiB per million interactions",
        mib(state),
        state as f64 / 1048576.0 / millions
    );
    let (_, peak) = memory().unwrap_or_default();
    println!("peak resident memory of the whole run: {} MiB", mib(peak));
    let rec = engine.recommend(
        reco::engine::Who::User(&world.user_ids[0]),
        &reco::engine::Query {
            n: 10,
            ..Default::default()
        },
        reco::engine::EngineKind::Quality,
    );
    assert_eq!(rec.items.len(), 10);
}
