//! Evaluation data: positives indexed to compact ids and split into train and test.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

use crate::algo::Csr;
use crate::algo::content::{ItemText, label_tokens};
use crate::algo::popularity::Event;
use crate::store::{Feedback, Item};

/// One positive interaction before indexing.
#[derive(Debug, Clone, PartialEq)]
pub struct Positive {
    pub user: String,
    pub item: String,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// A split ready for fitting and scoring.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// Users × items, weight 1 per training positive.
    pub train: Csr,
    /// Per user: sorted test items (not in the user's training items).
    pub test: Vec<Vec<u32>>,
    /// Timestamp of each training positive, aligned with `train.indices`.
    pub train_times: Vec<i64>,
    /// The ids of rows and columns; empty in training data (the trainer holds them).
    pub user_ids: Vec<String>,
    pub item_ids: Vec<String>,
    /// The newest training timestamp, at most the wall clock: "now" for time decay.
    pub now: i64,
    /// Text of each item (aligned with `item_ids`), for content similarity; empty when the source
    /// has none (train/test files).
    pub item_texts: Vec<ItemText>,
}

impl EvalData {
    /// Training positives as popularity events.
    pub fn train_events(&self) -> impl Iterator<Item = Event> + '_ {
        self.train
            .indices
            .iter()
            .zip(&self.train_times)
            .map(|(&item, &timestamp)| Event {
                item,
                weight: 1.0,
                timestamp,
            })
    }

    /// Training data without a test part, from (user row, item, weight, timestamp) interactions:
    /// what background training fits on. Weights of repeated pairs add up; the newest time counts.
    /// Takes the rows to sort them in place: at ten million interactions a copy or a map of
    /// pairs would cost hundreds of megabytes.
    pub fn from_interactions(
        n_users: usize,
        n_items: usize,
        interactions: Vec<(u32, u32, f32, i64)>,
        item_texts: Vec<ItemText>,
    ) -> EvalData {
        let now = now_of(&interactions);
        let (train, train_times) = matrix(n_users, n_items, interactions, i64::max);
        EvalData {
            now,
            test: vec![Vec::new(); n_users],
            // The trainer knows its rows' ids: a million strings here would only cost memory.
            user_ids: Vec::new(),
            item_ids: Vec::new(),
            train,
            train_times,
            item_texts,
        }
    }

    /// A temporal split of the training part itself (validation for fitting blend weights): each
    /// user's training items ordered by (time, item index), the first `floor(fraction · n)` stay.
    pub fn inner_split(&self, fraction: f64) -> EvalData {
        let mut train = Vec::new();
        let mut test = vec![Vec::new(); self.train.n_rows];
        for (u, user_test) in test.iter_mut().enumerate() {
            let span = self.train.indptr[u]..self.train.indptr[u + 1];
            let mut events: Vec<(i64, u32)> = self.train_times[span.clone()]
                .iter()
                .copied()
                .zip(self.train.indices[span].iter().copied())
                .collect();
            events.sort_unstable();
            let n_train = (events.len() as f64 * fraction).floor() as usize;
            for (rank, (ts, i)) in events.into_iter().enumerate() {
                if rank < n_train {
                    train.push((u as u32, i, ts));
                } else {
                    user_test.push(i);
                }
            }
        }
        let mut inner = build(self.train.n_rows, self.train.n_cols, train, test);
        inner.user_ids = self.user_ids.clone();
        inner.item_ids = self.item_ids.clone();
        inner.item_texts = self.item_texts.clone();
        inner
    }

    #[cfg(test)]
    pub(crate) fn for_tests(train: Csr, test: Vec<Vec<u32>>) -> Self {
        let times = vec![0; train.nnz()];
        Self {
            user_ids: (0..train.n_rows).map(|u| u.to_string()).collect(),
            item_ids: (0..train.n_cols).map(|i| i.to_string()).collect(),
            train,
            test,
            train_times: times,
            now: 0,
            item_texts: Vec::new(),
        }
    }
}

/// Interns string ids to dense indices in first-seen order.
#[derive(Default)]
struct Ids {
    index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl Ids {
    fn get(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.to_string(), i);
        self.ids.push(id.to_string());
        i
    }
}

/// Per-user temporal split: each user's positives ordered by (timestamp, item id); the first
/// `floor(train_fraction · n)` train, the rest test. `catalogue` lists every item to rank (items
/// without positives included).
pub fn split(catalogue: &[String], positives: Vec<Positive>, train_fraction: f64) -> EvalData {
    let mut items = Ids::default();
    for id in catalogue {
        items.get(id);
    }
    let mut users = Ids::default();
    let mut by_user: Vec<Vec<(i64, String)>> = Vec::new();
    for p in positives {
        let u = users.get(&p.user) as usize;
        if by_user.len() <= u {
            by_user.resize_with(u + 1, Vec::new);
        }
        by_user[u].push((p.timestamp, p.item));
    }
    let mut train = Vec::new();
    let mut test = vec![Vec::new(); by_user.len()];
    for (u, mut events) in by_user.into_iter().enumerate() {
        events.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_cmp(&a.1, &b.1)));
        events.dedup_by(|a, b| a.1 == b.1);
        let n_train = (events.len() as f64 * train_fraction).floor() as usize;
        for (rank, (ts, item)) in events.into_iter().enumerate() {
            let i = items.get(&item);
            if rank < n_train {
                train.push((u as u32, i, ts));
            } else {
                test[u].push(i);
            }
        }
    }
    with_ids(users, items, train, test)
}

/// Item ids compare as numbers when both are numbers (MovieLens ids), else as text.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// "Now" for time decay of (user, item, weight, time) rows: the newest event, but never past the
/// wall clock, so that events dated in the future (clock skew, a bad import) count as new instead
/// of making every real event look old. Data sets that end in the past (MovieLens) decay from
/// their own end.
pub fn now_of(interactions: &[(u32, u32, f32, i64)]) -> i64 {
    let newest = interactions.iter().map(|x| x.3).max().unwrap_or(0);
    newest.min(chrono::Utc::now().timestamp())
}

/// Users × items from (user, item, weight, time) rows, and the time of each entry (aligned with
/// its `indices`): rows of one pair merge, their weights summed and their times combined by
/// `time` in the rows' order.
fn matrix(
    n_rows: usize,
    n_cols: usize,
    mut rows: Vec<(u32, u32, f32, i64)>,
    time: fn(i64, i64) -> i64,
) -> (Csr, Vec<i64>) {
    // Stable, so that a pair's rows combine in the order given.
    rows.sort_by_key(|&(u, i, _, _)| (u, i));
    Csr::from_sorted(n_rows, n_cols, rows.into_iter(), time)
}

/// [`build`] with the interned ids.
fn with_ids(users: Ids, items: Ids, train: Vec<(u32, u32, i64)>, test: Vec<Vec<u32>>) -> EvalData {
    let mut data = build(users.ids.len(), items.ids.len(), train, test);
    data.user_ids = users.ids;
    data.item_ids = items.ids;
    data
}

/// Evaluation data of `n_users` × `n_items` (ids and texts left empty for the caller) from
/// training (user, item, time) rows and each user's test items.
fn build(
    n_users: usize,
    n_items: usize,
    train: Vec<(u32, u32, i64)>,
    mut test: Vec<Vec<u32>>,
) -> EvalData {
    let now = train.iter().map(|t| t.2).max().unwrap_or(0);
    let rows = train.into_iter().map(|(u, i, t)| (u, i, 1.0, t)).collect();
    // A repeated pair's last time counts; presence, not a count, is the weight.
    let (mut matrix, train_times) = matrix(n_users, n_items, rows, |_, t| t);
    matrix.data.fill(1.0);
    test.resize_with(n_users, Vec::new);
    for (u, t) in test.iter_mut().enumerate() {
        t.sort_unstable();
        t.dedup();
        t.retain(|i| !matrix.contains(u, *i));
    }
    EvalData {
        train: matrix,
        test,
        train_times,
        user_ids: Vec::new(),
        item_ids: Vec::new(),
        now,
        item_texts: vec![ItemText::default(); n_items],
    }
}

/// Positives of a data set (`is_positive` decides) split temporally, ranking all of its items.
pub fn from_dataset(
    items: &[Item],
    feedback: &[Feedback],
    is_positive: impl Fn(&Feedback) -> bool,
    train_fraction: f64,
) -> EvalData {
    let catalogue: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let positives = feedback
        .iter()
        .filter(|f| is_positive(f))
        .map(|f| Positive {
            user: f.user_id.clone(),
            item: f.item_id.clone(),
            timestamp: f.timestamp.timestamp(),
        })
        .collect();
    let mut split_data = split(&catalogue, positives, train_fraction);
    let texts: HashMap<&str, ItemText> = items
        .iter()
        .map(|i| {
            let text = ItemText {
                title: i.title.clone(),
                description: i.description.clone(),
                categories: i.categories.clone(),
                labels: label_tokens(&i.labels),
            };
            (i.id.as_str(), text)
        })
        .collect();
    split_data.item_texts = split_data
        .item_ids
        .iter()
        .map(|id| texts.get(id.as_str()).cloned().unwrap_or_default())
        .collect();
    split_data
}

/// A given train/test pair of tab-separated `user item rating timestamp` files (like ML-100K's
/// `ua.base`/`ua.test`); ratings >= `min_rating` are positives. The catalogue is every item in
/// either file.
pub fn from_files(train: &Path, test: &Path, min_rating: f64) -> anyhow::Result<EvalData> {
    let read = |path: &Path| -> anyhow::Result<Vec<(String, String, f64, i64)>> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text: String = text.iter().map(|&b| b as char).collect();
        let mut rows = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 {
                bail!(
                    "{} line {}: expected user, item, rating, timestamp separated by tabs",
                    path.display(),
                    n + 1
                );
            }
            let rating: f64 = f[2]
                .trim()
                .parse()
                .with_context(|| format!("{} line {}: rating", path.display(), n + 1))?;
            let ts: i64 = f[3]
                .trim()
                .parse()
                .with_context(|| format!("{} line {}: timestamp", path.display(), n + 1))?;
            rows.push((f[0].to_string(), f[1].to_string(), rating, ts));
        }
        Ok(rows)
    };
    let (train_rows, test_rows) = (read(train)?, read(test)?);
    let mut users = Ids::default();
    let mut items = Ids::default();
    for (u, i, _, _) in train_rows.iter().chain(&test_rows) {
        users.get(u);
        items.get(i);
    }
    let train: Vec<(u32, u32, i64)> = train_rows
        .iter()
        .filter(|r| r.2 >= min_rating)
        .map(|(u, i, _, t)| (users.index[u], items.index[i], *t))
        .collect();
    let mut test = vec![Vec::new(); users.ids.len()];
    for (u, i, r, _) in &test_rows {
        if *r >= min_rating {
            test[users.index[u] as usize].push(items.index[i]);
        }
    }
    Ok(with_ids(users, items, train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(user: &str, item: &str, timestamp: i64) -> Positive {
        Positive {
            user: user.into(),
            item: item.into(),
            timestamp,
        }
    }

    #[test]
    fn temporal_split_breaks_ties_by_item_id() {
        let catalogue: Vec<String> = ["1", "2", "3", "10", "99"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Five positives: 80% = 4 train. Items 10 and 3 tie at t=5: 3 comes first (numerically).
        let data = split(
            &catalogue,
            vec![
                p("a", "10", 5),
                p("a", "1", 1),
                p("a", "3", 5),
                p("a", "2", 2),
                p("a", "99", 9),
                p("b", "1", 1),
            ],
            0.8,
        );
        let train: Vec<&str> = data
            .train
            .row(0)
            .0
            .iter()
            .map(|&i| data.item_ids[i as usize].as_str())
            .collect();
        let mut expect = vec!["1", "2", "3", "10"];
        expect.sort_by_key(|id| catalogue.iter().position(|c| c == id));
        assert_eq!(train, expect);
        assert_eq!(
            data.test[0]
                .iter()
                .map(|&i| data.item_ids[i as usize].as_str())
                .collect::<Vec<_>>(),
            ["99"]
        );
        // One positive: floor(0.8) = 0 train, it tests (a cold user).
        assert_eq!(data.train.row_len(1), 0);
        assert_eq!(data.test[1].len(), 1);
        assert_eq!(data.now, 5);
        assert_eq!(data.train.n_cols, 5, "the whole catalogue is ranked");
    }

    /// One event dated in the year 9999 does not make every real event old: decay runs from the
    /// wall clock, and the future event counts as new.
    #[test]
    fn decay_runs_from_the_wall_clock_not_a_future_event() {
        let now = chrono::Utc::now().timestamp();
        let far = chrono::DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
            .unwrap()
            .timestamp();
        let interactions = [(0, 0, 1.0, now - 3600), (1, 1, 1.0, far)];
        let data = EvalData::from_interactions(2, 2, interactions.to_vec(), vec![]);
        assert!(data.now <= chrono::Utc::now().timestamp() && data.now >= now);
        let pop = crate::algo::popularity::fit(2, data.train_events(), data.now, Some(86_400.0));
        assert!(
            pop.score(0) > 0.9,
            "an hour-old like keeps its weight: {:?}",
            pop.scores
        );
        assert_eq!(pop.score(1), 1.0, "the future event counts as new");
    }
}
