//! [`Snapshot`]: every trained model the engines read, fixed at one moment. Built by `train`,
//! swapped into the engine whole; serialisable so that one replica of a cluster trains and the
//! others load it.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::algo::popularity::Popularity;
use crate::algo::{Csr, als, bpr, content, ease, enhanced, itemknn, smart};
use crate::eval::Choice;

/// Everything the engines read, trained at one moment. Serialisable, so that one replica of a
/// cluster trains and the others load it ([`Snapshot::encode`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Increases by one per successful run.
    pub version: u64,
    pub trained_at: DateTime<Utc>,
    /// Items `0..n_items` of the engine's index were known to this run.
    pub n_items: usize,
    /// The id of each of those items: the index space of every model here.
    pub item_ids: Vec<Arc<str>>,
    /// Row of each trained user in `train` and in the factor models.
    pub user_rows: HashMap<Arc<str>, u32>,
    /// Users × items training weights.
    pub train: Csr,
    /// Popularity with the half-life chosen on validation (or configured): trending, and a member
    /// of the `quality` blend.
    pub popularity: Popularity,
    /// The most popular items by that popularity, best first (at most 1,000).
    pub popular_order: Vec<u32>,
    pub itemknn: itemknn::ItemKnn,
    pub als: als::Als,
    pub bpr: bpr::Bpr,
    pub content: content::Content,
    /// `None` above its catalogue limit or when its fit would not fit the tuning budget.
    pub ease: Option<ease::Ease>,
    /// Weights in the `quality` blend of ALS, BPR, item-to-item, content, EASE and popularity
    /// (`eval::QUALITY_MEMBERS`), fitted on a temporal validation split of this run's data.
    pub quality_weights: Vec<f32>,
    /// What `smart` gives a short history, chosen on the same validation split.
    pub short_route: smart::ShortRoute,
    /// Recency inside a history: the half-life as a share of its length (`algo::recency`), when
    /// validation rewarded it; what a request's liked items weigh in `quality`, `enhanced` and
    /// `smart`.
    pub history_half_life: Option<f64>,
    /// The scoring model of `enhanced`, fitted on the same validation split.
    pub ranker: enhanced::Ranker,
    /// The settings each model's search chose on the validation split, and how.
    pub tuning: Vec<Choice>,
    /// Category ids of each item (for `enhanced`'s category features) and the ids' names.
    pub categories: Vec<Box<[u32]>>,
    pub category_names: Vec<String>,
    pub fit_seconds: f64,
    /// Seconds of each step of the fit (they overlap: see `eval::Steps`).
    pub steps: Vec<(String, f64)>,
}

/// What every encoded snapshot starts with: a tag and the format's version, uncompressed, so that a
/// reader tells a foreign format before decompressing. A build reads only its own format (postcard
/// is not self-describing: another layout would decode into garbage).
const MAGIC: &[u8; 8] = b"RECOSNAP";
/// Bumped whenever `Snapshot`, a model it holds or the encoding changes shape (4: zstd; 5: EASE,
/// popularity in the blend, smart's short route, the tuning report; 6: recency inside histories;
/// 7: EASE's weights in half precision).
pub const FORMAT: u32 = 7;
/// zstd's level: its default, fast on factor matrices that compress little anyway.
const LEVEL: i32 = 3;
/// Room for the longest string a snapshot holds (an id, a category name, a step's name): postcard
/// decodes a string from a reader into this scratch space.
const SCRATCH_BYTES: usize = 1 << 20;
/// Writes to zstd in slices this long, not one number at a time.
const BUFFER_BYTES: usize = 1 << 16;

impl Snapshot {
    /// Writes the snapshot to `out`: [`MAGIC`], [`FORMAT`], then postcard (compact, and
    /// serde-driven like the rest of reco) compressed with zstd, as a stream: besides the snapshot
    /// itself only the compressor's buffers are held, whatever its size. Returns `out`.
    pub fn write_to<W: Write>(&self, mut out: W) -> io::Result<W> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT.to_le_bytes())?;
        let zstd = zstd::stream::write::Encoder::new(out, LEVEL)?;
        let mut body = BufWriter::with_capacity(BUFFER_BYTES, zstd);
        postcard::to_io(self, &mut body).map_err(io::Error::other)?;
        body.into_inner().map_err(|e| e.into_error())?.finish()
    }

    /// The snapshot as bytes ([`Snapshot::write_to`] into memory).
    pub fn encode(&self) -> Vec<u8> {
        self.write_to(Vec::new())
            .expect("writing to memory succeeds")
    }

    /// Reads a snapshot written by [`Snapshot::write_to`] as a stream, and checks that it fits
    /// this build: its format, and every model's shape against the item count, so that a bad
    /// snapshot is refused once (with a log line by the caller) instead of panicking in every
    /// request that reads it.
    pub fn read_from<R: Read>(mut input: R) -> Result<Self, String> {
        let mut head = [0u8; 12];
        input
            .read_exact(&mut head)
            .map_err(|_| "not a reco snapshot (too short)")?;
        let (magic, format) = head.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err("not a reco snapshot (or one from a build before format 2)".into());
        }
        let format = u32::from_le_bytes(format.try_into().expect("four bytes"));
        if format != FORMAT {
            return Err(format!(
                "snapshot format {format}; this build reads format {FORMAT}"
            ));
        }
        let zstd = zstd::stream::read::Decoder::new(input).map_err(|e| e.to_string())?;
        let body = BufReader::with_capacity(BUFFER_BYTES, zstd);
        let mut scratch = vec![0u8; SCRATCH_BYTES];
        let (snapshot, _): (Snapshot, _) =
            postcard::from_io((body, &mut scratch)).map_err(|e| e.to_string())?;
        snapshot.check_shape()?;
        Ok(snapshot)
    }

    /// [`Snapshot::read_from`] on bytes in memory.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        Self::read_from(bytes)
    }

    /// Whether every model agrees with `n_items` and the trained users (what serving indexes by).
    fn check_shape(&self) -> Result<(), String> {
        let n = self.n_items;
        let users = self.train.n_rows;
        let factors = |name: &str, f: usize, items: &[f32], users_f: &[f32]| {
            (items.len() == n * f && users_f.len() == users * f)
                .then_some(())
                .ok_or(format!(
                    "{name} factors do not match {n} items and {users} users"
                ))
        };
        // Serving orders contributions by their similarity's bits and takes zero for "no
        // contribution" (`algo::accumulate`): every similarity must be positive and finite.
        let neighbours = |name: &str, lists: &[Vec<(u32, f32)>]| {
            let fits = |&(i, sim): &(u32, f32)| (i as usize) < n && sim > 0.0 && sim.is_finite();
            (lists.len() == n && lists.iter().flatten().all(fits))
                .then_some(())
                .ok_or(format!(
                    "{name} neighbours do not match {n} items (or a similarity is not positive)"
                ))
        };
        let checks = [
            (self.item_ids.len() == n, "item ids"),
            (self.train.n_cols == n, "the training matrix"),
            (
                self.train.indices.iter().all(|&i| (i as usize) < n),
                "the training matrix's items",
            ),
            (
                self.user_rows.values().all(|&r| (r as usize) < users),
                "the user rows",
            ),
            (self.popularity.scores.len() == n, "popularity"),
            (
                self.popular_order.iter().all(|&i| (i as usize) < n),
                "the popular order",
            ),
            (self.quality_weights.len() == 6, "the quality weights"),
            (
                self.ease.as_ref().is_none_or(|e| e.fits(n)),
                "the EASE weights",
            ),
            (self.categories.len() == n, "the item categories"),
            (self.bpr.item_bias.len() == n, "the BPR item biases"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(format!("{what} do not match {n} items and {users} users"));
        }
        factors(
            "ALS",
            self.als.factors,
            &self.als.item_factors,
            &self.als.user_factors,
        )?;
        factors(
            "BPR",
            self.bpr.factors,
            &self.bpr.item_factors,
            &self.bpr.user_factors,
        )?;
        neighbours("item-to-item", &self.itemknn.neighbours)?;
        neighbours("content", &self.content.neighbours)
    }

    /// The models `enhanced` generates candidates from.
    pub fn enhanced_models(&self) -> enhanced::Models<'_> {
        enhanced::Models {
            als: &self.als,
            bpr: &self.bpr,
            itemknn: &self.itemknn,
            content: &self.content,
            ease: self.ease.as_ref(),
            popularity: &self.popularity.scores,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}
