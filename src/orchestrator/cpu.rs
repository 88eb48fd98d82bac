//! Where the server's threads run: the engine workers in a lower CPU class
//! ([`lower_priority`]) and resting between stretches of work ([`Stretch`]), and each async worker
//! on a CPU of its own ([`pin_async_worker`]). Priority and affinity go through `libc` because the
//! standard library and tokio have no per-thread priority or affinity.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::WorkerPriority;

/// Lowers the calling thread's CPU priority. `Idle` puts it in Linux's `SCHED_IDLE` class (nice
/// 10 where that is refused): it runs only on CPU time no normal thread wants, and an async worker
/// woken by a request preempts it at once; at nice 10 a woken async worker can still wait behind a
/// running engine job for the scheduler's next decision. On a machine saturated by other work,
/// idle-class jobs wait, miss `orchestrator.deadline` and `fast` answers (what the deadline is
/// for). `Nice` keeps them a small share of a saturated machine instead.
pub(super) fn lower_priority(priority: WorkerPriority) {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler and setpriority on this thread's own id have no memory-safety
    // effect; failure only leaves the scheduling as it was.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if priority == WorkerPriority::Nice
            || libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0
        {
            let tid = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// Pins the calling async worker to a CPU of its own: the k-th worker to call this gets the k-th
/// CPU the process may run on; workers beyond that count stay free. Meant for the runtime's
/// park hook (only its workers park, never its blocking threads), and acts once per thread.
///
/// Why: while idle-class engine jobs keep every CPU busy, no CPU ever goes idle, and Linux's
/// fastest load balancing (a CPU pulling work the moment it runs out) never runs; the kernel
/// left both async workers stacked on one CPU for seconds while the other ran engine jobs, which
/// halved `fast`'s throughput and doubled its p99 (docs/BENCHMARKS.md). One worker per CPU cannot
/// stack, and tokio's work stealing still moves tasks between them.
pub fn pin_async_worker() {
    thread_local!(static PINNED: Cell<bool> = const { Cell::new(false) });
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if PINNED.with(|p| p.replace(true)) {
        return;
    }
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    #[cfg(target_os = "linux")]
    // SAFETY: reads and sets this thread's own CPU mask through zero-initialised `cpu_set_t`s of
    // the size passed; failure leaves the mask as it was.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .nth(k)
        else {
            return;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size, &one);
    }
}

/// How long an engine thread runs jobs back to back before it rests (see [`Stretch`]).
const STRETCH: Duration = Duration::from_millis(4);

/// One engine thread's current stretch of back-to-back jobs, and when it must rest.
///
/// Why: a CPU kept busy without a break, even by the lowest class Linux has, made a PostgreSQL on
/// the same host commit an order of magnitude slower: `SCHED_IDLE` only ranks threads within
/// one scheduling group (reco's cgroup or session), so against the database the engine threads
/// are a full-weight group, and a backend woken by its commit's disk write waited for the
/// scheduler's tick behind them. Two idle-class burners: a one-client insert loop fell from
/// ~5,500 to ~300-400 commits/s; the same burners resting 2 ms after every 8: ~5,800
/// (docs/BENCHMARKS.md). So each engine thread rests after every stretch of `STRETCH` or more,
/// for as long as keeps it at `orchestrator.worker_duty` of the time. (Putting the threads in a
/// cgroup marked `cpu.idle` fixed the burners too, but in the stall benchmark it starved every
/// engine job into a fallback and lengthened the commits further; not kept.)
#[derive(Debug, Default)]
pub(super) struct Stretch {
    /// Start of the current stretch, and the end of its last job.
    current: Option<(Instant, Instant)>,
}

impl Stretch {
    /// A job starts at `now`: a gap of a rest's length or more since the last job ends the
    /// stretch (the thread was idle anyway).
    pub(super) fn job_starts(&mut self, now: Instant, duty: f64) {
        let rest = rest_for(STRETCH, duty).max(Duration::from_micros(100));
        self.current = match self.current {
            Some((start, last)) if now.saturating_duration_since(last) < rest => Some((start, now)),
            _ => Some((now, now)),
        };
    }

    /// A job ended at `now`: how long to rest before the next one, if the stretch is long
    /// enough (the stretch then ends).
    pub(super) fn job_ends(&mut self, now: Instant, duty: f64) -> Option<Duration> {
        let (start, _) = self.current?;
        let ran = now.saturating_duration_since(start);
        if duty >= 1.0 || ran < STRETCH {
            self.current = Some((start, now));
            return None;
        }
        self.current = None;
        Some(rest_for(ran, duty))
    }
}

/// The rest after running for `ran` that keeps a thread at `duty` of the time.
fn rest_for(ran: Duration, duty: f64) -> Duration {
    ran.mul_f64((1.0 - duty).max(0.0) / duty)
}

/// Runs `job` (which hands its answer over itself) as one of the calling engine thread's jobs,
/// then rests if the thread's stretch calls for it: the rest delays only the next job.
pub(super) fn run_then_rest(duty: f64, job: impl FnOnce()) {
    thread_local!(static CURRENT: RefCell<Stretch> = RefCell::default());
    CURRENT.with_borrow_mut(|s| s.job_starts(Instant::now(), duty));
    job();
    if let Some(rest) = CURRENT.with_borrow_mut(|s| s.job_ends(Instant::now(), duty)) {
        std::thread::sleep(rest);
    }
}

/// CPU time the calling thread has used: what a job costs, apart from the time it spent
/// preempted on a busy machine (through `libc`: the standard library has no per-thread CPU clock).
pub(super) fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `t`.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
        }
    }
    // No per-thread clock: time since start-up, so that jobs are measured by their wall time.
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}
