//! Group commit for feedback.
//!
//! Feedback is the write that scales with traffic. Instead of one transaction (and one pooled
//! connection) per request, requests hand their rows to [`FeedbackWriter`], whose single task takes
//! everything queued, commits it with [`FeedbackCommit`] (one transaction on one connection, then
//! applied to the engine), and only then answers each request. While one group commits, the next one gathers, so the group size grows with load and the
//! connection count does not. A request is acknowledged only after its rows are committed and applied
//! to the in-memory engine, so an acknowledged event is never lost and is "seen" at once.
//!
//! If a group fails, its requests are retried one by one so that one bad request (a reference to a
//! user deleted a moment ago, say) cannot fail the others.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::commit::FeedbackCommit;
use super::error::Error;
use crate::store::{self, Feedback};

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

impl FeedbackWriter {
    /// Starts the writer task.
    pub fn spawn(commit: FeedbackCommit, max_group_rows: usize) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = Task {
            commit,
            max_group_rows,
        };
        (Self { tx }, tokio::spawn(task.run(rx)))
    }

    /// Writes `rows`, returning once they are committed.
    pub async fn write(&self, rows: Vec<Feedback>) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Write { rows, done })
            .await
            .map_err(|_| Error::ShutDown)?;
        wait.await
            .map_err(|_| Error::ShutDown)?
            .map_err(Error::Store)
    }

    /// Commits everything already queued, then stops the task (graceful shutdown).
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Close).await;
    }
}

struct Task {
    commit: FeedbackCommit,
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
                self.commit_group(group).await;
            }
        }
        tracing::info!("feedback writer stopped");
    }

    /// Writes a group in one transaction; on failure, retries each request alone.
    async fn commit_group(&self, group: Vec<Pending>) {
        let all: Vec<Feedback> = group
            .iter()
            .flat_map(|(rows, _)| rows.iter().cloned())
            .collect();
        match self.commit.commit(&all).await {
            Ok(()) => {
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
                    let _ = done.send(self.commit.commit(&rows).await);
                }
            }
        }
    }
}

fn busy() -> store::Error {
    store::Error::Db(crate::db::Error::Busy {
        waited: std::time::Duration::ZERO,
    })
}
