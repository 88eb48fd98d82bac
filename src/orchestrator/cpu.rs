//! Where the server's threads run: the engine workers in a lower CPU class
//! ([`lower_priority`]), and each async worker on a CPU of its own ([`pin_async_worker`]). Both go
//! through `libc` because the standard library and tokio have no per-thread priority or affinity.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

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
