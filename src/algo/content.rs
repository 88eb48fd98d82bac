//! Content similarity: items as TF-IDF vectors over the words of their title and description,
//! their categories and their labels, compared by cosine; the top-K most similar items are kept per
//! item. Needs no interactions, so it can recommend items nobody has touched yet.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{History, Scorer, score_by_neighbours, top_k_similar};

/// The text of one item, as the content model reads it.
#[derive(Debug, Clone, Default)]
pub struct ItemText {
    pub title: String,
    pub description: String,
    pub categories: Vec<String>,
    /// `key=value` pairs of the item's labels (strings, numbers and booleans).
    pub labels: Vec<String>,
}

impl ItemText {
    /// Tokens with their weights: categories and labels count as whole tokens (weight 2 and 1),
    /// words of title (1) and description (0.5) are lower-cased alphanumeric runs of 2+ characters.
    fn tokens(&self) -> Vec<(String, f32)> {
        let mut out = Vec::new();
        for c in &self.categories {
            out.push((format!("cat:{}", c.to_lowercase()), 2.0));
        }
        for l in &self.labels {
            out.push((format!("label:{}", l.to_lowercase()), 1.0));
        }
        for (text, weight) in [(&self.title, 1.0), (&self.description, 0.5)] {
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 2)
            {
                out.push((word.to_lowercase(), weight));
            }
        }
        out
    }
}

/// Labels of an item as `key=value` tokens (nested values are skipped).
pub fn label_tokens(labels: &serde_json::Value) -> Vec<String> {
    let Some(map) = labels.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some(format!("{k}={s}")),
            serde_json::Value::Number(n) => Some(format!("{k}={n}")),
            serde_json::Value::Bool(b) => Some(format!("{k}={b}")),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Similar items kept per item.
    pub k: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { k: 50 }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Content {
    /// For item i: (similar item, cosine), best first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

pub fn fit(items: &[ItemText], params: Params) -> Content {
    // Term ids and document frequencies.
    let mut vocabulary: HashMap<String, u32> = HashMap::new();
    let docs: Vec<Vec<(u32, f32)>> = items
        .iter()
        .map(|item| {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            for (token, w) in item.tokens() {
                let next = vocabulary.len() as u32;
                let id = *vocabulary.entry(token).or_insert(next);
                *tf.entry(id).or_default() += w;
            }
            let mut v: Vec<(u32, f32)> = tf.into_iter().collect();
            v.sort_unstable_by_key(|x| x.0);
            v
        })
        .collect();
    let mut df = vec![0f32; vocabulary.len()];
    for d in &docs {
        for &(t, _) in d {
            df[t as usize] += 1.0;
        }
    }
    let n = items.len().max(1) as f32;
    // TF-IDF, L2-normalised.
    let vectors: Vec<Vec<(u32, f32)>> = docs
        .into_iter()
        .map(|d| {
            let mut v: Vec<(u32, f32)> = d
                .into_iter()
                .map(|(t, tf)| (t, tf * ((n + 1.0) / (df[t as usize] + 1.0)).ln()))
                .collect();
            let norm = v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| x.1 /= norm);
            }
            v
        })
        .collect();
    // Inverted index: term → (item, weight).
    let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); vocabulary.len()];
    for (i, v) in vectors.iter().enumerate() {
        for &(t, w) in v {
            postings[t as usize].push((i as u32, w));
        }
    }
    let n_items = items.len();
    let neighbours = (0..n_items)
        .into_par_iter()
        .map_init(
            || vec![0f32; n_items],
            |acc, i| {
                let mut touched = Vec::new();
                for &(t, w) in &vectors[i] {
                    for &(j, wj) in &postings[t as usize] {
                        if j as usize != i {
                            if acc[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            acc[j as usize] += w * wj;
                        }
                    }
                }
                let sims: Vec<(u32, f32)> = touched
                    .into_iter()
                    .map(|j| {
                        let s = acc[j as usize];
                        acc[j as usize] = 0.0;
                        (j, s)
                    })
                    .filter(|x| x.1 > 0.0)
                    .collect();
                top_k_similar(sims, params.k)
            },
        )
        .collect();
    Content { neighbours }
}

impl Scorer for Content {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        score_by_neighbours(&self.neighbours, history, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(title: &str, cats: &[&str]) -> ItemText {
        ItemText {
            title: title.into(),
            categories: cats.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn similar_text_and_categories_are_neighbours() {
        let items = [
            text("Space Odyssey", &["scifi"]),
            text("Space Station Odyssey", &["scifi"]),
            text("Cooking Pasta", &["food"]),
            text("Pasta and Space", &["food"]),
        ];
        let m = fit(&items, Params { k: 2 });
        assert_eq!(m.neighbours[0][0].0, 1, "{:?}", m.neighbours[0]);
        assert_eq!(m.neighbours[2][0].0, 3);
        assert!(
            m.neighbours[0]
                .iter()
                .all(|x| x.1 <= 1.0 + 1e-6 && x.1 > 0.0)
        );
        // Nothing in common: no neighbour.
        let m = fit(&[text("alpha", &[]), text("beta", &[])], Params::default());
        assert!(m.neighbours[0].is_empty());
        assert_eq!(
            label_tokens(&serde_json::json!({"lang": "en", "year": 1999, "x": [1]})),
            ["lang=en", "year=1999"]
        );
    }
}
