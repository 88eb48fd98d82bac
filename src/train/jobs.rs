//! Training jobs started over HTTP: `POST /api/admin/train` starts one and answers at once with its
//! id; `GET /api/admin/train/{id}` reports it. One job runs at a time. A job is a task of its own,
//! not the request's future, so a client that gives up (or a request timeout) never cancels a fit
//! halfway and never leaves one running unseen while the next starts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

/// Finished jobs kept for `GET /api/admin/train/{id}`.
const KEEP: usize = 20;

/// What a successful run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Trained {
    pub version: u64,
    pub trained_at: DateTime<Utc>,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub fit_seconds: f64,
    /// Each model's settings as chosen on the validation split, and how the search went.
    pub settings: Vec<crate::eval::Choice>,
    /// `quality`'s blend weights by member.
    pub quality_weights: std::collections::BTreeMap<String, f32>,
    /// What `smart` gives a short history.
    pub short_histories: crate::algo::smart::ShortRoute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
}

/// One job as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub status: Status,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The snapshot it trained or loaded (`succeeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Trained>>,
    /// Why it failed, for the operator (details are in the server log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    running: Option<Job>,
    finished: VecDeque<Job>,
}

/// The jobs of one process.
#[derive(Default, Clone)]
pub struct Jobs {
    state: Arc<Mutex<State>>,
}

impl Jobs {
    /// Starts `run` as a new job and returns it, or returns the job already running as `Err`.
    pub fn start(
        &self,
        run: impl Future<Output = Result<Trained, String>> + Send + 'static,
    ) -> Result<Job, Job> {
        let job = {
            let mut s = self.state.lock();
            if let Some(running) = &s.running {
                return Err(running.clone());
            }
            s.next_id += 1;
            let job = Job {
                id: s.next_id,
                status: Status::Running,
                started_at: Utc::now(),
                finished_at: None,
                snapshot: None,
                error: None,
            };
            s.running = Some(job.clone());
            job
        };
        let state = self.state.clone();
        let mut done = job.clone();
        tokio::spawn(async move {
            // A panic inside `run` ends this task; the guard still records the job as failed.
            let mut guard = Finish {
                state,
                job: Some(done.clone()),
            };
            let result = run.await;
            done.finished_at = Some(Utc::now());
            match result {
                Ok(trained) => {
                    done.status = Status::Succeeded;
                    done.snapshot = Some(Box::new(trained));
                }
                Err(error) => {
                    done.status = Status::Failed;
                    done.error = Some(error);
                }
            }
            guard.job = Some(done);
        });
        Ok(job)
    }

    /// A running or recently finished job.
    pub fn get(&self, id: u64) -> Option<Job> {
        let s = self.state.lock();
        s.running
            .iter()
            .chain(&s.finished)
            .find(|j| j.id == id)
            .cloned()
    }
}

/// Moves a job from running to finished when its task ends, however it ends.
struct Finish {
    state: Arc<Mutex<State>>,
    job: Option<Job>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        if job.status == Status::Running {
            job.status = Status::Failed;
            job.finished_at = Some(Utc::now());
            job.error = Some("the training task ended unexpectedly".into());
        }
        let mut s = self.state.lock();
        s.running = None;
        if s.finished.len() == KEEP {
            s.finished.pop_front();
        }
        s.finished.push_back(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn finished(jobs: &Jobs, id: u64) -> Job {
        loop {
            let job = jobs.get(id).expect("kept");
            if job.status != Status::Running {
                return job;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn one_job_at_a_time_and_a_panic_is_a_failure() {
        let jobs = Jobs::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = jobs
            .start(async move {
                let _ = rx.await;
                Err("no data".to_string())
            })
            .unwrap();
        let busy = jobs.start(async { Err(String::new()) }).unwrap_err();
        assert_eq!(busy.id, first.id, "409 names the running job");
        tx.send(()).unwrap();
        let done = finished(&jobs, first.id).await;
        assert_eq!(
            (done.status, done.error.as_deref()),
            (Status::Failed, Some("no data"))
        );
        let second = jobs
            .start(async { panic!("a bug in a model") })
            .expect("the first one is over");
        let done = finished(&jobs, second.id).await;
        assert_eq!(done.status, Status::Failed);
        assert!(
            jobs.start(async { Err(String::new()) }).is_ok(),
            "not stuck"
        );
    }
}
