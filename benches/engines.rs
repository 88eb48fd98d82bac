//! In-process recommend latency per engine on a synthetic catalogue of 100,000 items with 64-factor
//! models (issue targets: `fast` p99 under 0.5 ms, `quality` and `enhanced` under 5 ms, one core).
//!
//! `cargo bench --bench engines` runs it in full: it trains on 2 million interactions, prints each
//! engine's p50/p99 over single calls (criterion measures means, not tails), then criterion's own
//! measurement. Without `--bench` (as `cargo test --all-targets` runs it) a small catalogue checks
//! that the benchmark itself works.
//!
//! `RECO_BENCH_MOVIELENS=DIR` measures on MovieLens 100K instead, trained as the server trains it
//! (imported into a SQLite file, loaded, trained by the `Trainer`), over every user: the costs
//! behind the HTTP benchmarks of `quality` and `fast` on that data.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use reco::config::Config;
use reco::data::synthetic::{Spec, World, memory};
use reco::db::Pool;
use reco::engine::{Engine, EngineKind, Query, Who};
use reco::metrics::Metrics;
use reco::store::Store;
use reco::train::Trainer;

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

/// MovieLens 100K from `dir` in a SQLite file, loaded and trained as a server does it.
fn movielens(dir: &str) -> (Arc<Engine>, Vec<String>) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    rt.block_on(async {
        let mut config = Config::default();
        config.db.url = format!("sqlite://{}", tmp.path().join("m.db").display()).into();
        let metrics = Arc::new(Metrics::new());
        let pool = Pool::open(&config.db, metrics.pool.clone())
            .await
            .expect("pool");
        let store = Store::new(pool.clone());
        store.migrate(&config.db).await.expect("migrations");
        let data = reco::data::movielens::load(dir.as_ref()).expect("MovieLens 100K");
        data.write(&store).await.expect("import");
        let engine = Arc::new(Engine::new(
            reco::policy::FeedbackPolicy::from_config(&config.recommend),
            config.recommend.diversity,
        ));
        engine.load(&store).await.expect("load");
        let trainer = Trainer::new(store, engine.clone(), config.recommend, metrics, None);
        let started = Instant::now();
        trainer.train_once().await.expect("training");
        println!(
            "MovieLens 100K from {dir}: trained in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        pool.close().await;
        let users = data.users.iter().map(|u| u.id.clone()).collect();
        (engine, users)
    })
}

fn main() {
    if let Ok(dir) = std::env::var("RECO_BENCH_MOVIELENS") {
        let (engine, users) = movielens(&dir);
        let users: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
        let rounds = std::env::var("RECO_BENCH_ROUNDS").map_or(5, |r| r.parse().expect("a count"));
        return measure(&engine, &users, rounds);
    }
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
    let snapshot = reco::train::fit(world.training_data(), 1, reco::eval::Tuning::none());
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
    measure(&engine, &users, if full { 3 } else { 1 });
    if !full {
        return;
    }
    let q = Query {
        n: 10,
        ..Default::default()
    };
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

/// Each engine's p50, p99 and mean over `rounds` calls per user, one at a time on this thread
/// (`RECO_BENCH_N` items per answer, default 10).
fn measure(engine: &Engine, users: &[&str], rounds: usize) {
    let n = std::env::var("RECO_BENCH_N").map_or(10, |n| n.parse().expect("a count"));
    let q = Query {
        n,
        ..Default::default()
    };
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9}",
        "engine", "p50 (ms)", "p99 (ms)", "mean (ms)", "calls"
    );
    // `RECO_BENCH_ENGINES=quality,fast` measures only those (for a profiler).
    let only = std::env::var("RECO_BENCH_ENGINES").ok();
    let chosen = |k: &EngineKind| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|x| x == k.name()))
    };
    for kind in ENGINES.into_iter().filter(chosen) {
        let mut times = Vec::with_capacity(users.len() * rounds);
        for _ in 0..rounds {
            for &u in users {
                let t = Instant::now();
                let rec = engine.recommend(Who::User(u), &q, kind);
                times.push(t.elapsed());
                assert_eq!(rec.items.len(), n, "{kind:?} for {u}");
                black_box(rec);
            }
        }
        times.sort_unstable();
        let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e3 / times.len() as f64;
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>9.4} {:>9}",
            kind.name(),
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            mean,
            times.len()
        );
    }
}
