//! Group commit for feedback.
//!
//! Feedback is the write that scales with traffic. Instead of one transaction (and one pooled
//! connection) per request, requests hand their rows to [`FeedbackWriter`], whose single task takes
//! everything queued, writes it in one transaction on one connection, and only then answers each
//! request. While one group commits, the next one gathers, so the group size grows with load and the
//! connection count does not. A request is acknowledged only after its rows are committed and applied
//! to the in-memory engine, so an acknowledged event is never lost and is "seen" at once.
//!
//! If a group fails, its requests are retried one by one so that one bad request (a reference to a
//! user deleted a moment ago, say) cannot fail the others.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{self, Feedback, Store};

/// Requests queued beyond this make submitters wait (backpressure) rather than grow memory.
const QUEUE_DEPTH: usize = 4096;

enum Message {
    Write {
        rows: Vec<Feedback>,
        done: oneshot::Sender<Result<(), store::Error>>,
    },
    /// Finish everything queued before this message, then stop.
    Close,
}

/// Handle for submitting feedback; clones share the one writer task.
#[derive(Clone)]
pub struct FeedbackWriter {
    tx: mpsc::Sender<Message>,
}

/// Errors a submitter can see.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The writer has shut down (the server is stopping).
    #[error("feedback writer is shut down")]
    ShutDown,
}

impl FeedbackWriter {
    /// Starts the writer task.
    pub fn spawn(
        store: Store,
        orchestrator: Arc<Orchestrator>,
        metrics: Arc<Metrics>,
        auto_create: bool,
        max_group_rows: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = Task {
            store,
            orchestrator,
            metrics,
            auto_create,
            max_group_rows,
        };
        (Self { tx }, tokio::spawn(task.run(rx)))
    }

    /// Writes `rows`, returning once they are committed.
    pub async fn write(&self, rows: Vec<Feedback>) -> Result<(), WriteError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Write { rows, done })
            .await
            .map_err(|_| WriteError::ShutDown)?;
        wait.await
            .map_err(|_| WriteError::ShutDown)?
            .map_err(WriteError::Store)
    }

    /// Commits everything already queued, then stops the task (graceful shutdown).
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Close).await;
    }
}

struct Task {
    store: Store,
    orchestrator: Arc<Orchestrator>,
    metrics: Arc<Metrics>,
    auto_create: bool,
    max_group_rows: usize,
}

type Pending = (Vec<Feedback>, oneshot::Sender<Result<(), store::Error>>);

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut closing = false;
        while !closing {
            let Some(first) = rx.recv().await else { break };
            let mut group: Vec<Pending> = Vec::new();
            let mut rows = 0;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Write { rows: r, done } => {
                        rows += r.len();
                        group.push((r, done));
                    }
                    Message::Close => closing = true,
                }
                if closing || rows >= self.max_group_rows {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !group.is_empty() {
                self.commit(group).await;
            }
        }
        tracing::info!("feedback writer stopped");
    }

    /// Writes a group in one transaction; on failure, retries each request alone.
    async fn commit(&self, group: Vec<Pending>) {
        let all: Vec<Feedback> = group
            .iter()
            .flat_map(|(rows, _)| rows.iter().cloned())
            .collect();
        match self.store.insert_feedback(&all, self.auto_create).await {
            Ok(()) => {
                self.applied(&all);
                for (_, done) in group {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) if e.is_busy() => {
                // The database is busy for everyone: each request gets "busy" (503, retry later).
                for (_, done) in group {
                    let _ = done.send(Err(busy()));
                }
            }
            Err(e) if group.len() == 1 => {
                let (_, done) = group.into_iter().next().expect("one request");
                let _ = done.send(Err(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = group.len(), "group commit failed; retrying requests one by one");
                for (rows, done) in group {
                    let result = self.store.insert_feedback(&rows, self.auto_create).await;
                    if result.is_ok() {
                        self.applied(&rows);
                    }
                    let _ = done.send(result);
                }
            }
        }
    }

    fn applied(&self, rows: &[Feedback]) {
        self.orchestrator.feedback_committed(rows);
        self.metrics.feedback_rows.inc_by(rows.len() as u64);
        self.metrics.feedback_commits.inc();
    }
}

fn busy() -> store::Error {
    store::Error::Db(crate::db::Error::Busy {
        waited: std::time::Duration::ZERO,
    })
}
