//! Source rows into checked batches: every source (a CSV or JSON Lines file, a SQL query) pushes
//! its rows through one [`Batcher`], which checks each row, skips or stops at a bad one, and hands
//! out batches of at most `size` rows for one transaction each.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::schema::{Cell, Mapping, Row};
use crate::store::{Feedback, Item, User};

/// A bad row: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The line of a file (1 = the first line; a CSV header is line 1), or the row of a query.
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Rows of one kind for one transaction.
#[derive(Debug)]
pub enum Rows {
    Items(Vec<Item>),
    Users(Vec<User>),
    Feedback(Vec<Feedback>),
}

/// A batch and the lines it came from.
#[derive(Debug)]
pub struct Batch {
    pub rows: Rows,
    pub first_line: u64,
    pub last_line: u64,
    /// Bad rows skipped (`--skip-bad`) since the previous batch.
    pub skipped: u64,
    /// The first few of them, for the summary.
    pub problems: Vec<Problem>,
}

impl Batch {
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Items(r) => r.len(),
            Rows::Users(r) => r.len(),
            Rows::Feedback(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most problems a batch keeps for the summary (the rest are counted).
const KEEP_PROBLEMS: usize = 10;

/// Checks rows and groups them into batches.
pub struct Batcher {
    mapping: Mapping,
    skip_bad: bool,
    size: usize,
    latest: DateTime<Utc>,
    current: Vec<Row>,
    /// Index in `current` of each id (items and users): a later row of the same id replaces the
    /// earlier one, since one upsert statement cannot change a row twice.
    ids: HashMap<String, usize>,
    first_line: u64,
    last_line: u64,
    skipped: u64,
    problems: Vec<Problem>,
}

impl Batcher {
    /// `latest`: the latest feedback time accepted (now plus the allowed skew).
    pub fn new(mapping: Mapping, skip_bad: bool, size: usize, latest: DateTime<Utc>) -> Self {
        Batcher {
            mapping,
            skip_bad,
            size: size.max(1),
            latest,
            current: Vec::new(),
            ids: HashMap::new(),
            first_line: 0,
            last_line: 0,
            skipped: 0,
            problems: Vec::new(),
        }
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Adds the row at `line`, read through `get`. `Err` when the row is bad and bad rows stop
    /// the import; `Ok(Some(batch))` when the batch is full.
    pub fn push<'r>(
        &mut self,
        line: u64,
        get: impl Fn(&str) -> Option<Cell<'r>>,
    ) -> Result<Option<Batch>, Problem> {
        match self.mapping.row(get, self.latest) {
            Ok(row) => self.add(line, row),
            Err(e) => {
                let problem = Problem {
                    line,
                    message: e.to_string(),
                };
                self.bad(problem)?;
            }
        }
        Ok((self.current.len() >= self.size).then(|| self.take()))
    }

    /// Counts a bad row when skipping them; otherwise returns it as the error.
    pub fn bad(&mut self, problem: Problem) -> Result<(), Problem> {
        if !self.skip_bad {
            return Err(problem);
        }
        self.skipped += 1;
        if self.problems.len() < KEEP_PROBLEMS {
            self.problems.push(problem);
        }
        Ok(())
    }

    fn add(&mut self, line: u64, row: Row) {
        if self.current.is_empty() {
            self.first_line = line;
        }
        self.last_line = line;
        let id = match &row {
            Row::Item(i) => Some(&i.id),
            Row::User(u) => Some(&u.id),
            Row::Feedback(_) => None,
        };
        if let Some(id) = id {
            if let Some(&at) = self.ids.get(id) {
                self.current[at] = row;
                return;
            }
            self.ids.insert(id.clone(), self.current.len());
        }
        self.current.push(row);
    }

    /// The rows gathered so far (possibly none) as a batch.
    pub fn take(&mut self) -> Batch {
        self.ids.clear();
        let rows = std::mem::take(&mut self.current);
        let rows = match self.mapping.kind {
            super::schema::Kind::Items => Rows::Items(
                rows.into_iter()
                    .filter_map(|r| if let Row::Item(i) = r { Some(i) } else { None })
                    .collect(),
            ),
            super::schema::Kind::Users => Rows::Users(
                rows.into_iter()
                    .filter_map(|r| if let Row::User(u) = r { Some(u) } else { None })
                    .collect(),
            ),
            super::schema::Kind::Feedback => Rows::Feedback(
                rows.into_iter()
                    .filter_map(|r| {
                        if let Row::Feedback(f) = r {
                            Some(f)
                        } else {
                            None
                        }
                    })
                    .collect(),
            ),
        };
        Batch {
            rows,
            first_line: self.first_line,
            last_line: self.last_line,
            skipped: std::mem::take(&mut self.skipped),
            problems: std::mem::take(&mut self.problems),
        }
    }
}
