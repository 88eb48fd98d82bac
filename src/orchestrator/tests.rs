//! The orchestrator's unit tests: traffic split, bounded caches.

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

/// The answer cache and the impressions are bounded in bytes (long answers evict sooner), and
/// ids the engine does not know leave nothing in either.
#[tokio::test]
async fn caches_are_bounded_in_bytes_and_ignore_unknown_users() {
    let engine = Arc::new(Engine::new(FeedbackPolicy::default(), 0.0));
    let item = |i: usize| crate::store::Item {
        id: format!("item-{i}"),
        categories: vec![],
        labels: serde_json::json!({}),
        title: String::new(),
        description: String::new(),
        timestamp: chrono::Utc::now(),
        hidden: false,
    };
    engine.upsert_items(&(0..2000).map(item).collect::<Vec<_>>());
    let like = |u: usize| Feedback {
        user_id: format!("user-{u}"),
        item_id: "item-0".into(),
        feedback_type: "like".into(),
        value: 1.0,
        timestamp: chrono::Utc::now(),
    };
    engine.add_feedback(&(0..200).map(like).collect::<Vec<_>>());
    engine.rerank();
    let config = OrchestratorConfig {
        cache_memory_mb: 1,
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::new());
    let o = Orchestrator::new(engine, &config, FeedbackPolicy::default(), metrics);
    let request = Request {
        n: 1000,
        ..Default::default()
    };
    for u in 0..500 {
        let served = o
            .recommend(&format!("stranger-{u}"), request.clone(), EngineKind::Auto)
            .await;
        assert_eq!(served.rec.items.len(), 1000);
    }
    let cache = o.cache.as_ref().unwrap();
    assert_eq!((cache.len(), o.impressions.len()), (0, 0), "unknown users");
    for u in 0..200 {
        o.recommend(&format!("user-{u}"), request.clone(), EngineKind::Auto)
            .await;
    }
    assert!(cache.weight() <= 1 << 20, "{} bytes", cache.weight());
    // 1,000 items weigh ~55 KB: far fewer than the 200 users fit in 1 MiB.
    assert!(
        (5..40).contains(&cache.len()),
        "{} answers cached",
        cache.len()
    );
    assert!(o.impressions.len() <= 200);
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

/// Engine worker threads run in the CPU class configured: Linux's idle class by default, nice 10
/// when asked (the main thread keeps its own).
#[cfg(target_os = "linux")]
#[test]
fn engine_workers_run_in_the_configured_cpu_class() {
    let class = |priority| {
        let pool = engine_workers(1, priority);
        // SAFETY: reads this thread's own scheduling policy and nice value.
        pool.install(|| unsafe {
            let tid = libc::gettid() as libc::id_t;
            (
                libc::sched_getscheduler(0),
                libc::getpriority(libc::PRIO_PROCESS, tid),
            )
        })
    };
    assert_eq!(class(WorkerPriority::Idle).0, libc::SCHED_IDLE);
    assert_eq!(class(WorkerPriority::Nice), (libc::SCHED_OTHER, 10));
    // SAFETY: as above, for the test's own thread.
    assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
}

/// With the park hook, each async worker ends up on a CPU of its own (as many as the process may
/// use), and a worker's mask never changes again.
#[cfg(target_os = "linux")]
#[test]
fn async_workers_are_pinned_one_per_cpu() {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    // SAFETY: reads the calling thread's own CPU mask into a zeroed set of the size passed.
    let mask = || unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect::<Vec<_>>()
    };
    let cpus = mask();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.len())
        .on_thread_park(crate::orchestrator::pin_async_worker)
        .enable_all()
        .build()
        .unwrap();
    let mut seen: HashMap<std::thread::ThreadId, Vec<usize>> = HashMap::new();
    let started = Instant::now();
    // Every worker parks and picks up tasks sooner or later: sample until each was seen pinned.
    while seen.values().filter(|m| m.len() == 1).count() < cpus.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "workers seen: {seen:?}"
        );
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                runtime.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    (std::thread::current().id(), mask())
                })
            })
            .collect();
        for task in tasks {
            let (thread, m) = runtime.block_on(task).unwrap();
            seen.insert(thread, m);
        }
    }
    let mut pinned: Vec<usize> = seen
        .values()
        .filter(|m| m.len() == 1)
        .map(|m| m[0])
        .collect();
    pinned.sort_unstable();
    assert_eq!(pinned, cpus, "one worker on each CPU the process may use");
    // The test's own thread is not a worker: its mask is untouched.
    assert_eq!(mask(), cpus);
}
