//! Candidate generation: each source's best items for a user, with every candidate described by the
//! same [`FEATURES`].

use crate::algo::accumulate::Accumulator;
use crate::algo::als::Als;
use crate::algo::bpr::Bpr;
use crate::algo::content::Content;
use crate::algo::ease::{self, Ease};
use crate::algo::itemknn::ItemKnn;
use crate::algo::{History, Scorer, top_n};

/// Candidate items per source.
pub const FROM_FACTORS: usize = 100;
pub const FROM_NEIGHBOURS: usize = 100;
pub const FROM_CONTENT: usize = 50;
pub const FROM_CATEGORIES: usize = 50;
pub const FROM_POPULAR: usize = 20;
/// Categories of the user's history whose popular items are candidates.
const TOP_CATEGORIES: usize = 3;
/// History items whose neighbours are gathered, at most.
pub const MAX_SOURCES: usize = 200;

/// Feature count, the intercept included.
pub const N_FEATURES: usize = 10;
/// Names of the features, in order (for logs and the fitted weights' report).
pub const FEATURES: [&str; N_FEATURES] = [
    "als",
    "bpr",
    "neighbours",
    "content",
    "popularity",
    "category_affinity",
    "als_rank",
    "neighbours_rank",
    "ease",
    "intercept",
];

/// Which source proposed a candidate first (for the reason shown to users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Item-to-item neighbour of this history item.
    Neighbours(u32),
    /// Content neighbour of this history item.
    Content(u32),
    /// Popular in this category id.
    Category(u32),
    Factors,
    Popular,
}

/// One candidate with its features and its score (0 until ranked).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub item: u32,
    pub features: [f32; N_FEATURES],
    pub source: Source,
    pub score: f32,
}

/// The trained models the candidate generator reads, borrowed from a snapshot or an evaluation fit.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub als: &'a Als,
    pub bpr: &'a Bpr,
    pub itemknn: &'a ItemKnn,
    pub content: &'a Content,
    /// `None` when training did not fit EASE (a large catalogue, or no budget).
    pub ease: Option<&'a Ease>,
    /// Time-decayed popularity per item.
    pub popularity: &'a [f32],
    /// Items by descending popularity (a prefix is enough).
    pub popular_order: &'a [u32],
    /// Category ids of each item.
    pub categories: &'a [Box<[u32]>],
}

/// Per-thread buffers of candidate generation, sized to the catalogue once.
#[derive(Default)]
pub struct Scratch {
    factors: Vec<f32>,
    neighbours: Accumulator,
    content: Accumulator,
}

/// Interns category names to ids, per item.
pub fn category_ids<'a>(
    items: impl IntoIterator<Item = &'a [String]>,
) -> (Vec<Box<[u32]>>, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::<&str, u32>::new();
    let items: Vec<&'a [String]> = items.into_iter().collect();
    let ids = items
        .iter()
        .map(|cats| {
            cats.iter()
                .map(|c| {
                    *index.entry(c.as_str()).or_insert_with(|| {
                        names.push(c.clone());
                        names.len() as u32 - 1
                    })
                })
                .collect()
        })
        .collect();
    (ids, names)
}

impl Models<'_> {
    fn n_items(&self) -> usize {
        self.popularity.len()
    }

    /// Candidates for a user (their training row, when known) with features filled in, excluding
    /// the history (whose `items` are sorted).
    pub fn candidates(
        &self,
        user: Option<usize>,
        history: History<'_>,
        sc: &mut Scratch,
    ) -> Vec<Candidate> {
        let n = self.n_items();
        let seen = |i: u32| history.items.binary_search(&i).is_ok();
        // Factorisation: every item's score, kept for the feature.
        sc.factors.resize(n, 0.0);
        self.als.score(user, history, &mut sc.factors[..n]);
        // A newcomer's folded-in factors are zero: the factorisation has nothing to propose.
        let factor_top = if history.items.is_empty() && user.is_none() {
            Vec::new()
        } else {
            top_n(&sc.factors[..n], history.items, FROM_FACTORS)
        };
        // Neighbours and content of the history.
        sc.neighbours.prepare(n);
        sc.content.prepare(n);
        for &j in history.items.iter().take(MAX_SOURCES) {
            sc.neighbours
                .add_neighbours(j, &self.itemknn.neighbours[j as usize]);
            sc.content
                .add_neighbours(j, &self.content.neighbours[j as usize]);
        }
        let sources = Sources {
            neighbour_top: sc.neighbours.top(FROM_NEIGHBOURS, seen),
            content_top: sc.content.top(FROM_CONTENT, seen),
            factor_top,
            categories: self.favourite_categories(history.items),
        };
        let mut out = self.gather(&sources, sc, seen);
        self.describe(&mut out, user, history, sc, &sources);
        sc.neighbours.reset();
        sc.content.reset();
        out
    }

    /// The categories of the history's items, most frequent first, with their counts.
    fn favourite_categories(&self, history: &[u32]) -> Vec<(u32, f32)> {
        let mut counts: Vec<(u32, f32)> = Vec::new();
        for &j in history {
            for &c in self
                .categories
                .get(j as usize)
                .map(|c| &c[..])
                .unwrap_or(&[])
            {
                match counts.iter_mut().find(|x| x.0 == c) {
                    Some(x) => x.1 += 1.0,
                    None => counts.push((c, 1.0)),
                }
            }
        }
        counts.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }

    /// Each source's candidates in order (neighbours, factors, content, favourite categories,
    /// popular), every item once, features still empty.
    fn gather(
        &self,
        sources: &Sources,
        sc: &Scratch,
        seen: impl Fn(u32) -> bool,
    ) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::with_capacity(
            FROM_FACTORS + FROM_NEIGHBOURS + FROM_CONTENT + FROM_CATEGORIES + FROM_POPULAR,
        );
        let mut listed = std::collections::HashSet::with_capacity(out.capacity());
        let mut push = |item: u32, source: Source, out: &mut Vec<Candidate>| {
            if listed.insert(item) {
                out.push(Candidate {
                    item,
                    features: [0.0; N_FEATURES],
                    source,
                    score: 0.0,
                });
            }
        };
        for &(i, _) in &sources.neighbour_top {
            push(i, Source::Neighbours(sc.neighbours.source(i)), &mut out);
        }
        for &i in &sources.factor_top {
            push(i, Source::Factors, &mut out);
        }
        for &(i, _) in &sources.content_top {
            push(i, Source::Content(sc.content.source(i)), &mut out);
        }
        for &(c, _) in sources.categories.iter().take(TOP_CATEGORIES) {
            let in_category = self
                .popular_order
                .iter()
                .filter(|&&i| !seen(i) && self.categories[i as usize].contains(&c))
                .take(FROM_CATEGORIES / TOP_CATEGORIES);
            for &i in in_category {
                push(i, Source::Category(c), &mut out);
            }
        }
        let popular = self.popular_order.iter().filter(|&&i| !seen(i));
        for &i in popular.take(FROM_POPULAR) {
            push(i, Source::Popular, &mut out);
        }
        out
    }

    /// Fills in every candidate's features, each scaled per user so that users with long and
    /// short histories compare.
    fn describe(
        &self,
        out: &mut [Candidate],
        user: Option<usize>,
        history: History<'_>,
        sc: &Scratch,
        sources: &Sources,
    ) {
        let history_len = history.items.len().max(1) as f32;
        let bpr_user = self.bpr.user_vector(user, history);
        let max_of = |f: &dyn Fn(u32) -> f32| {
            out.iter()
                .map(|c| f(c.item).abs())
                .fold(0f32, f32::max)
                .max(f32::MIN_POSITIVE)
        };
        let als_score = |i: u32| sc.factors[i as usize];
        let bpr_score = |i: u32| self.bpr.score_one(&bpr_user, i);
        let als_max = max_of(&als_score);
        let bpr_max = max_of(&bpr_score);
        let knn_max = sc.neighbours.max().max(f32::MIN_POSITIVE);
        let content_max = sc.content.max().max(f32::MIN_POSITIVE);
        let pop_max = self
            .popular_order
            .first()
            .map(|&i| self.popularity[i as usize])
            .unwrap_or(0.0)
            .max(f32::MIN_POSITIVE);
        let rank_in = |list: &[u32], i: u32| {
            list.iter()
                .position(|&x| x == i)
                .map_or(0.0, |r| 1.0 / (r as f32 + 2.0).ln())
        };
        let neighbour_items: Vec<u32> = sources.neighbour_top.iter().map(|x| x.0).collect();
        // EASE's score of a candidate: its column in the rows of the history's items (at most
        // EASE's cap), read for the candidates only.
        let ease_rows = &history.items[..history.items.len().min(ease::MAX_HISTORY)];
        let ease_score = |i: u32| self.ease.map_or(0.0, |e| e.column_sum(ease_rows, i));
        let ease_max = max_of(&ease_score);
        for c in out.iter_mut() {
            let i = c.item;
            let affinity = self.categories[i as usize]
                .iter()
                .filter_map(|cat| sources.categories.iter().find(|x| x.0 == *cat))
                .map(|x| x.1 / history_len)
                .fold(0f32, f32::max);
            c.features = [
                als_score(i) / als_max,
                bpr_score(i) / bpr_max,
                sc.neighbours.sum(i) / knn_max,
                sc.content.sum(i) / content_max,
                (1.0 + self.popularity[i as usize]).ln() / (1.0 + pop_max).ln(),
                affinity,
                rank_in(&sources.factor_top, i),
                rank_in(&neighbour_items, i),
                ease_score(i) / ease_max,
                1.0,
            ];
        }
    }
}

/// What `enhanced` draws candidates from, for one user.
struct Sources {
    /// The factorisation's best items.
    factor_top: Vec<u32>,
    /// Item-to-item and content neighbours of the history, with their summed similarity.
    neighbour_top: Vec<(u32, f32)>,
    content_top: Vec<(u32, f32)>,
    /// The history's categories, most frequent first.
    categories: Vec<(u32, f32)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::enhanced::Ranker;

    #[test]
    fn candidates_come_from_every_source_with_features() {
        use crate::algo::testing::two_blocks;
        use crate::algo::{als, bpr, content, itemknn};
        let ui = two_blocks();
        let texts: Vec<content::ItemText> = (0..10)
            .map(|i| content::ItemText {
                title: if i < 5 { "space saga" } else { "cooking show" }.into(),
                categories: vec![if i < 5 { "scifi" } else { "food" }.into()],
                ..Default::default()
            })
            .collect();
        let (categories, names) = category_ids(texts.iter().map(|t| &t.categories[..]));
        assert_eq!(names, ["scifi", "food"]);
        let popularity: Vec<f32> = (0..10).map(|i| 10.0 - i as f32).collect();
        let popular_order: Vec<u32> = (0..10).collect();
        let (a, b, k, c) = (
            als::fit(
                &ui,
                als::Params {
                    factors: 4,
                    ..Default::default()
                },
            ),
            bpr::fit(&ui, Default::default()),
            itemknn::fit(&ui, Default::default()),
            content::fit(&texts, Default::default()),
        );
        let e = crate::algo::ease::fit(&ui, Default::default());
        let models = Models {
            als: &a,
            bpr: &b,
            itemknn: &k,
            content: &c,
            ease: e.as_ref(),
            popularity: &popularity,
            popular_order: &popular_order,
            categories: &categories,
        };
        // User 12 (block 5..10) misses item 7.
        let mut sc = Scratch::default();
        let mut cands = models.candidates(Some(12), History::of(&ui, 12), &mut sc);
        assert!(
            cands.iter().all(|c| !ui.contains(12, c.item)),
            "history excluded"
        );
        let seven = cands.iter().find(|c| c.item == 7).expect("item 7 proposed");
        assert!(matches!(seven.source, Source::Neighbours(j) if (5..10).contains(&j)));
        assert_eq!(
            seven.features[5], 1.0,
            "all of the history is in its category"
        );
        assert!(seven.features[2] > 0.0 && seven.features[3] > 0.0);
        assert!(
            seven.features[8] > 0.0,
            "EASE links item 7 to the block: {seven:?}"
        );
        // A ranker preferring neighbours and category puts the missing item first.
        let mut w = [0.0; N_FEATURES];
        w[2] = 1.0;
        w[5] = 1.0;
        Ranker { weights: w }.rank(&mut cands);
        assert_eq!(cands[0].item, 7, "{cands:?}");
        // A newcomer still gets popular candidates.
        let empty = History {
            items: &[],
            weights: &[],
        };
        let cands = models.candidates(None, empty, &mut sc);
        assert!(
            cands
                .iter()
                .any(|c| c.source == Source::Popular && c.item == 0)
        );
    }
}
