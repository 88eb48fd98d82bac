//! Evaluation data: positives indexed to compact ids and split into train and test.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

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
    /// How [`EvalData::inner_split`] carves validation data from the training part: the shape of
    /// the split this data came from, so settings are chosen on data shaped like the test.
    pub validation: Split,
}

impl EvalData {
    /// Training positives as popularity events, each (user, item) pair with its weight in the
    /// matrix (1 in evaluation; the sum of the policy's weights of the pair's rows in training:
    /// a purchase counts ten times a view) at the pair's newest time.
    pub fn train_events(&self) -> impl Iterator<Item = Event> + '_ {
        let entries = self.train.indices.iter().zip(&self.train.data);
        entries
            .zip(&self.train_times)
            .map(|((&item, &weight), &timestamp)| Event {
                item,
                weight,
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
            validation: Split::Temporal,
        }
    }

    /// The times of user `u`'s training positives, aligned with the user's matrix row.
    pub fn user_times(&self, u: usize) -> &[i64] {
        &self.train_times[self.train.indptr[u]..self.train.indptr[u + 1]]
    }

    /// Weighs every user's row by recency at `half_life` (see `algo::recency`), in place: from
    /// then on the matrix weighs histories as serving's requests do, so scoring (blend weights,
    /// the ranker, `reco evaluate`'s engines) sees the same histories. Models fitted on the
    /// matrix before are unaffected; fit none after.
    pub fn weigh_histories(&mut self, half_life: f64) {
        for u in 0..self.train.n_rows {
            let span = self.train.indptr[u]..self.train.indptr[u + 1];
            crate::algo::recency::weigh(
                &self.train_times[span.clone()],
                half_life,
                &mut self.train.data[span],
            );
        }
    }

    /// Validation data carved from the training part the way [`EvalData::validation`] says
    /// (per user by time, per user at random, or one time cut), keeping `fraction` of it for
    /// training. What every setting is chosen on, never the test part.
    pub fn inner_split(&self, fraction: f64) -> EvalData {
        let cut = match self.validation {
            Split::GlobalTime => Some(global_cut(self.train_times.clone(), fraction)),
            _ => None,
        };
        let mut rng = match self.validation {
            Split::Random { seed } => Some(ChaCha8Rng::seed_from_u64(seed.wrapping_add(1))),
            _ => None,
        };
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
            if let Some(rng) = &mut rng {
                events.shuffle(rng);
            }
            let n_train = (events.len() as f64 * fraction).floor() as usize;
            for (rank, (ts, i)) in events.into_iter().enumerate() {
                if cut.map_or(rank < n_train, |cut| ts < cut) {
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
        inner.validation = self.validation;
        inner
    }

    /// Every `every`-th user (rows 0, `every`, `2 every`, ...) with their training and test
    /// items, over the same catalogue: a sample spread evenly over the rows, the same for the same
    /// data.
    pub fn sample_users(&self, every: usize) -> EvalData {
        let every = every.max(1);
        let rows: Vec<usize> = (0..self.train.n_rows).step_by(every).collect();
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let (mut indices, mut data, mut times) = (Vec::new(), Vec::new(), Vec::new());
        for &u in &rows {
            let span = self.train.indptr[u]..self.train.indptr[u + 1];
            indices.extend_from_slice(&self.train.indices[span.clone()]);
            data.extend_from_slice(&self.train.data[span.clone()]);
            times.extend_from_slice(&self.train_times[span]);
            indptr.push(indices.len());
        }
        EvalData {
            train: Csr {
                n_rows: rows.len(),
                n_cols: self.train.n_cols,
                indptr,
                indices,
                data,
            },
            test: rows.iter().map(|&u| self.test[u].clone()).collect(),
            train_times: times,
            user_ids: match self.user_ids.is_empty() {
                true => Vec::new(),
                false => rows.iter().map(|&u| self.user_ids[u].clone()).collect(),
            },
            item_ids: self.item_ids.clone(),
            now: self.now,
            item_texts: self.item_texts.clone(),
            validation: self.validation,
        }
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
            validation: Split::Temporal,
        }
    }
}

/// Interns string ids to dense indices in first-seen order.
#[derive(Default)]
pub(super) struct Ids {
    pub(super) index: HashMap<String, u32>,
    pub(super) ids: Vec<String>,
}

impl Ids {
    pub(super) fn get(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.to_string(), i);
        self.ids.push(id.to_string());
        i
    }
}

/// How positives divide into training and test data (`reco evaluate --split`); each keeps
/// `train_fraction` (0.8) for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// Per user: positives ordered by (timestamp, item id), the first `floor(fraction · n)`
    /// train, the rest test (what the server's validation does).
    #[default]
    Temporal,
    /// Per user: positives in a random order drawn from `seed`, the first `floor(fraction · n)`
    /// train (a user's test items are no later than their training ones on average).
    Random { seed: u64 },
    /// One time cut for everyone, after the first `floor(fraction · n)` of all positives by time:
    /// positives before it train, the rest test. Users with none before it are evaluated with an
    /// empty history: the cold-start case.
    GlobalTime,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Temporal => write!(f, "temporal (per user, by time)"),
            Split::Random { seed } => write!(f, "random (per user, seed {seed})"),
            Split::GlobalTime => write!(f, "global-time (one time cut for everyone)"),
        }
    }
}

/// Positives split by `how` (see [`Split`]). `catalogue` lists every item to rank (items without
/// positives included). A user's positives are first ordered by (timestamp, item id), repeats of
/// an item next to each other dropped.
pub fn split(
    catalogue: &[String],
    positives: Vec<Positive>,
    train_fraction: f64,
    how: Split,
) -> EvalData {
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
    for events in &mut by_user {
        events.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_cmp(&a.1, &b.1)));
        events.dedup_by(|a, b| a.1 == b.1);
    }
    let fraction = |n: usize| (n as f64 * train_fraction).floor() as usize;
    // One time cut for everyone, or (`None`) the first fraction of each user's list trains.
    let cut = match how {
        Split::Temporal => None,
        Split::Random { seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for events in &mut by_user {
                events.shuffle(&mut rng);
            }
            None
        }
        Split::GlobalTime => Some(global_cut(
            by_user.iter().flatten().map(|e| e.0).collect(),
            train_fraction,
        )),
    };
    let mut train = Vec::new();
    let mut test = vec![Vec::new(); by_user.len()];
    for (u, events) in by_user.into_iter().enumerate() {
        let n_train = fraction(events.len());
        for (rank, (ts, item)) in events.into_iter().enumerate() {
            let i = items.get(&item);
            if cut.map_or(rank < n_train, |cut| ts < cut) {
                train.push((u as u32, i, ts));
            } else {
                test[u].push(i);
            }
        }
    }
    let mut data = with_ids(users, items, train, test);
    data.validation = how;
    data
}

/// The time before which the first `floor(fraction · n)` of `times` fall (`i64::MAX` when that is
/// all of them).
fn global_cut(mut times: Vec<i64>, fraction: f64) -> i64 {
    let first_test = (times.len() as f64 * fraction).floor() as usize;
    match times.get(first_test) {
        Some(_) => *times.select_nth_unstable(first_test).1,
        None => i64::MAX,
    }
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
pub(super) fn with_ids(
    users: Ids,
    items: Ids,
    train: Vec<(u32, u32, i64)>,
    test: Vec<Vec<u32>>,
) -> EvalData {
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
        validation: Split::Temporal,
    }
}

/// Positives of a data set (`is_positive` decides) split by `how`, ranking all of its items.
pub fn from_dataset(
    items: &[Item],
    feedback: &[Feedback],
    is_positive: impl Fn(&Feedback) -> bool,
    train_fraction: f64,
    how: Split,
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
    let mut split_data = split(&catalogue, positives, train_fraction, how);
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

#[cfg(test)]
mod tests;
