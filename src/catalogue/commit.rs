//! Committing feedback and applying it: the step the group-commit writer runs for every group.

use std::sync::Arc;

use super::ledger::Ledger;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{self, Feedback, Store};

/// Writes feedback rows in one transaction, then applies them to the engine and reports them to
/// the orchestrator (clicks) and the metrics. Nothing is applied unless the commit succeeded.
pub struct FeedbackCommit {
    pub(super) store: Store,
    pub(super) engine: Arc<Engine>,
    pub(super) orchestrator: Arc<Orchestrator>,
    pub(super) metrics: Arc<Metrics>,
    /// Create unknown users and items named in feedback (`feedback.auto_create`).
    pub(super) auto_create: bool,
    pub(super) ledger: Arc<Ledger>,
}

impl FeedbackCommit {
    /// Commits `rows` (one transaction), then applies them.
    pub async fn commit(&self, rows: &[Feedback]) -> Result<(), store::Error> {
        let pos = self.store.insert_feedback(rows, self.auto_create).await?;
        self.ledger.own(pos, || self.engine.add_feedback(rows));
        self.orchestrator.feedback_committed(rows);
        self.metrics.feedback_rows.inc_by(rows.len() as u64);
        self.metrics.feedback_commits.inc();
        Ok(())
    }
}
