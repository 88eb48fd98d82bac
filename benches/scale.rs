//! Training at scale: a synthetic data set of 10 million interactions, 1 million users and 100,000
//! items (targets: under 3 minutes on 2 cores, peak 1.5 GiB), with each step's time, the
//! snapshot's size as published, the serving memory the engine needs per million interactions
//! (target 40 MiB) and `fast` / `quality` latency in process.
//!
//! `cargo bench --bench scale` runs it in full. Without `--bench` (as `cargo test --all-targets`
//! runs it) a small data set checks that the benchmark itself works.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reco::data::synthetic::{Spec, World, memory};
use reco::engine::{EngineKind, Query, Who};

/// The system allocator, counting the bytes of live heap blocks (each block's usable size plus
/// glibc's 8-byte header), so that the serving state is measured by what it holds. Resident memory
/// cannot tell: after training, the allocator reuses the pages training freed. Hand-written because
/// it is a dozen lines of a benchmark; no crate needed.
struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);
/// The most `LIVE` has been since [`reset_peak`].
static PEAK: AtomicU64 = AtomicU64::new(0);

fn grow(bytes: u64) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn block(ptr: *mut u8) -> u64 {
    // SAFETY: `ptr` is a live block of the system allocator (malloc on Linux).
    unsafe { libc::malloc_usable_size(ptr.cast()) as u64 + 8 }
}

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(block(p));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(block(ptr), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = block(ptr);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(before, Ordering::Relaxed);
            grow(block(p));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts the kernel's count of peak resident memory (`VmHWM`) again from now (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    PEAK.store(live(), Ordering::Relaxed);
}

/// Counts the bytes written to it.
struct Sink(u64);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

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
    // Training holds its input and what it builds; the generator's own copy is dropped (and
    // regenerated from its seed for the serving measurement) so that it does not count.
    let generated = live();
    let data = world.training_data();
    let input = live() - generated;
    drop(world);
    let held = live() - input;
    reset_peak();
    let (before, _) = memory().unwrap_or_default();
    let started = Instant::now();
    let snapshot = reco::train::fit(data, 1, reco::train::tuning_of(&Default::default()));
    let fit_seconds = started.elapsed().as_secs_f64();
    let (after_fit, peak_fit) = memory().unwrap_or_default();
    println!(
        "trained every model on {threads} threads in {fit_seconds:.1} s; resident {} MiB before \
         (the input), {} MiB after, peak {} MiB while training",
        mib(before),
        mib(after_fit),
        mib(peak_fit)
    );
    println!(
        "snapshot (models, training matrix, ids) holds {} MiB",
        mib(live().saturating_sub(held))
    );
    println!(
        "heap at its peak while training: {} MiB (the input included)",
        mib(PEAK.load(Ordering::Relaxed).saturating_sub(held))
    );
    for (step, seconds) in &snapshot.steps {
        println!("  step {step:<28} {seconds:>7.1} s");
    }
    println!(
        "quality weights {:?}; short histories {:?}; ranker {:?}",
        snapshot.quality_weights, snapshot.short_route, snapshot.ranker.weights
    );
    for c in &snapshot.tuning {
        println!(
            "  chosen {:<8} {} (validation NDCG@10 {:?}, {} tried{})",
            c.model,
            c.setting,
            c.validation_ndcg,
            c.tried,
            c.stopped
                .as_deref()
                .map(|s| format!("; {s}"))
                .unwrap_or_default()
        );
    }
    snapshot_sizes(&snapshot);
    // Serving memory: the engine's live state (catalogue and every history), by the heap blocks
    // it holds.
    let snapshot = Arc::new(snapshot);
    let world = World::generate(spec);
    let models = live();
    let engine = world.engine();
    let state = live().saturating_sub(models);
    engine.install(snapshot.clone(), 0);
    let millions = world.interactions.len() as f64 / 1e6;
    println!(
        "serving state (catalogue and histories): {} MiB, {:.1} MiB per million interactions",
        mib(state),
        state as f64 / 1048576.0 / millions
    );
    let (_, peak) = memory().unwrap_or_default();
    println!("peak resident memory of the whole run: {} MiB", mib(peak));
    latency(&engine, &world, if full { 2000 } else { 200 });
}

/// The snapshot as replicas exchange it: postcard alone (the format before zstd) and as published,
/// each written to a counting sink; resident memory while writing shows that the encoding streams
/// (zstd's buffers are C allocations: resident memory, not the heap count).
fn snapshot_sizes(snapshot: &reco::engine::Snapshot) {
    let started = Instant::now();
    let plain = postcard::to_io(snapshot, Sink(0)).expect("serialises").0;
    let plain_seconds = started.elapsed().as_secs_f64();
    let (before_write, _) = memory().unwrap_or_default();
    reset_peak();
    let started = Instant::now();
    let published = snapshot.write_to(Sink(0)).expect("encodes").0;
    let write_seconds = started.elapsed().as_secs_f64();
    let (_, peak_write) = memory().unwrap_or_default();
    println!(
        "snapshot encoded: {} MiB with postcard alone ({plain_seconds:.1} s), {} MiB with zstd as \
         published ({write_seconds:.1} s; resident memory grew {} MiB while writing)",
        mib(plain),
        mib(published),
        mib(peak_write.saturating_sub(before_write))
    );
}

/// One core's latency in process over `calls` users drawn evenly from the whole population.
fn latency(engine: &reco::engine::Engine, world: &World, calls: usize) {
    for kind in [EngineKind::Fast, EngineKind::Quality] {
        let mut times: Vec<f64> = (0..calls)
            .map(|c| {
                let user = &world.user_ids[c * 7919 % world.user_ids.len()];
                let query = Query {
                    n: 10,
                    ..Default::default()
                };
                let started = Instant::now();
                let rec = engine.recommend(Who::User(user), &query, kind);
                assert_eq!(rec.items.len(), 10, "{kind:?} for {user}");
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{kind:?} in process: p50 {:.3} ms, p99 {:.3} ms over {calls} users",
            times[calls / 2],
            times[calls * 99 / 100]
        );
    }
}
