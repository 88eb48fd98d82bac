//! MovieLens 100K: `u.item` (pipe-separated, Latin-1, 19 genre flags), `u.user`, `u.genre` and
//! `u.data` (tab-separated user, item, rating, unix time). Ratings become feedback of type `rating`
//! with the rating as value; genres become item categories.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::dataset::Dataset;
use crate::store::{Feedback, Item, User};

/// Latin-1 maps byte-for-byte onto the first 256 Unicode code points.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn read(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
}

/// Reads the data set in `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Dataset> {
    let genres: Vec<String> = latin1(&read(dir, "u.genre")?)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('|').next().unwrap_or_default().to_string())
        .collect();
    if genres.len() != 19 {
        bail!("u.genre: expected 19 genres, found {}", genres.len());
    }

    let mut items = Vec::new();
    for (n, line) in latin1(&read(dir, "u.item")?).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 5 + 19 {
            bail!(
                "u.item line {}: expected 24 fields, found {}",
                n + 1,
                f.len()
            );
        }
        let released = NaiveDate::parse_from_str(f[2], "%d-%b-%Y").ok();
        let categories = genres
            .iter()
            .zip(&f[5..])
            .filter(|(_, flag)| **flag == "1")
            .map(|(g, _)| g.clone())
            .collect();
        items.push(Item {
            id: f[0].to_string(),
            categories,
            labels: json!({ "release_date": f[2], "imdb_url": f[4] }),
            title: f[1].to_string(),
            description: String::new(),
            timestamp: released
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .unwrap_or_default(),
            hidden: false,
        });
    }

    let mut users = Vec::new();
    for (n, line) in latin1(&read(dir, "u.user")?).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 5 {
            bail!(
                "u.user line {}: expected 5 fields, found {}",
                n + 1,
                f.len()
            );
        }
        let age: i64 = f[1]
            .parse()
            .with_context(|| format!("u.user line {}: age", n + 1))?;
        users.push(User {
            id: f[0].to_string(),
            labels: json!({ "age": age, "gender": f[2], "occupation": f[3], "zip_code": f[4] }),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        });
    }

    let mut feedback = Vec::new();
    for (n, line) in latin1(&read(dir, "u.data")?).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 4 {
            bail!(
                "u.data line {}: expected 4 tab-separated fields, found {}",
                n + 1,
                f.len()
            );
        }
        let rating: f64 = f[2]
            .parse()
            .with_context(|| format!("u.data line {}: rating", n + 1))?;
        let secs: i64 = f[3]
            .parse()
            .with_context(|| format!("u.data line {}: timestamp", n + 1))?;
        feedback.push(Feedback {
            user_id: f[0].to_string(),
            item_id: f[1].to_string(),
            feedback_type: "rating".into(),
            value: rating,
            timestamp: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        });
    }
    Ok(Dataset {
        items,
        users,
        feedback,
    })
}
