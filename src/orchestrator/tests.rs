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

/// An engine thread rests only after a stretch of 4 ms or more of back-to-back jobs, for as long
/// as keeps it at `worker_duty` of the time; a gap between jobs (the thread was idle anyway)
/// starts a new stretch; at duty 1 it never rests.
#[test]
fn engine_threads_rest_after_long_stretches_only() {
    use cpu::Stretch;
    use std::time::{Duration, Instant};
    let ms = |n: f64| Duration::from_secs_f64(n / 1000.0);
    let close = |rest: Option<Duration>, want: f64| {
        let rest = rest.expect("a rest").as_secs_f64() * 1000.0;
        assert!((rest - want).abs() < 0.001, "rested {rest} ms, want {want}");
    };
    let t0 = Instant::now();
    let mut s = Stretch::default();
    // Two short jobs back to back: the first leaves the stretch at 2 ms, the second makes it 5.
    s.job_starts(t0, 0.8);
    assert_eq!(s.job_ends(t0 + ms(2.0), 0.8), None);
    s.job_starts(t0 + ms(2.0), 0.8);
    close(s.job_ends(t0 + ms(5.0), 0.8), 1.25);
    // After the rest a new stretch begins: 3 ms of work is not enough for another.
    s.job_starts(t0 + ms(6.25), 0.8);
    assert_eq!(s.job_ends(t0 + ms(9.25), 0.8), None);
    // A gap of a rest's length (1 ms at 0.8) means the thread was idle: the stretch starts over.
    s.job_starts(t0 + ms(10.5), 0.8);
    assert_eq!(s.job_ends(t0 + ms(13.5), 0.8), None);
    // One long job rests in proportion; at half duty as long as it ran.
    s.job_starts(t0 + ms(20.0), 0.8);
    close(s.job_ends(t0 + ms(30.0), 0.8), 2.5);
    s.job_starts(t0 + ms(40.0), 0.5);
    close(s.job_ends(t0 + ms(46.0), 0.5), 6.0);
    // Duty 1: never.
    s.job_starts(t0 + ms(50.0), 1.0);
    assert_eq!(s.job_ends(t0 + ms(80.0), 1.0), None);
}

/// The rest happens on the worker between jobs, after the job's own work: at duty 0.5, jobs that
/// each run 5 ms start at least 10 ms apart (a lower bound, so a loaded machine cannot fail it).
#[test]
fn a_resting_worker_spaces_its_jobs() {
    use std::time::{Duration, Instant};
    let spin = Duration::from_millis(5);
    let mut starts = Vec::new();
    for _ in 0..4 {
        cpu::run_then_rest(0.5, || {
            let start = Instant::now();
            starts.push(start);
            while start.elapsed() < spin {
                std::hint::spin_loop();
            }
        });
    }
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] >= 2 * spin, "{:?}", pair[1] - pair[0]);
    }
}
