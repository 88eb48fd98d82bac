//! `reco export`: items, users or feedback streamed from the store into JSON Lines or CSV, all of
//! them or those since a time. One connection reads the table row by row while each row is
//! written, so an export of any size holds one row in memory.
//!
//! The files read back with `reco import` as they are: JSON Lines holds each row as the API shows
//! it; CSV has a header of the same field names, categories joined by `|` (a JSON array when a
//! category holds `|` or starts with `[`), labels as JSON text and times in RFC 3339 to the
//! millisecond, which is what the store keeps.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::read::Format;
use super::schema::Kind;
use crate::store::{self, Feedback, Item, Store, User};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the database failed: {0}")]
    Store(#[from] store::Error),
    #[error("writing the output failed: {0}")]
    Write(String),
}

/// Writes every row of `kind` (with `since`: stamped at or after it) to `out`; returns how many.
pub async fn export(
    store: &Store,
    kind: Kind,
    format: Format,
    since: Option<DateTime<Utc>>,
    out: impl Write + Send,
) -> Result<u64, ExportError> {
    let since_ms = since.map(|t| t.timestamp_millis());
    let mut writer = RowWriter::new(format, kind, out).map_err(write_error)?;
    let mut failed = None;
    let mut keep = |result: Result<(), String>| match result {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    };
    match kind {
        Kind::Items => {
            store
                .export_items(since_ms, |i| keep(writer.write(&i, item_cells)))
                .await?
        }
        Kind::Users => {
            store
                .export_users(since_ms, |u| keep(writer.write(&u, user_cells)))
                .await?
        }
        Kind::Feedback => {
            store
                .export_feedback(since_ms, |f| keep(writer.write(&f, feedback_cells)))
                .await?
        }
    }
    if let Some(e) = failed {
        return Err(ExportError::Write(e));
    }
    writer.finish().map_err(ExportError::Write)
}

fn write_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Write(e.to_string())
}

/// One output in one format.
enum RowWriter<W: Write> {
    Jsonl {
        out: std::io::BufWriter<W>,
        rows: u64,
    },
    Csv {
        out: Box<csv::Writer<W>>,
        rows: u64,
    },
}

impl<W: Write> RowWriter<W> {
    fn new(format: Format, kind: Kind, out: W) -> Result<Self, csv::Error> {
        Ok(match format {
            Format::Jsonl => RowWriter::Jsonl {
                out: std::io::BufWriter::with_capacity(1 << 16, out),
                rows: 0,
            },
            Format::Csv => {
                let mut out = csv::Writer::from_writer(out);
                out.write_record(kind.columns())?;
                RowWriter::Csv {
                    out: Box::new(out),
                    rows: 0,
                }
            }
        })
    }

    /// Writes `row`: as JSON, or as the CSV cells `cells` makes of it.
    fn write<T: Serialize>(&mut self, row: &T, cells: fn(&T) -> Vec<String>) -> Result<(), String> {
        match self {
            RowWriter::Jsonl { out, rows } => {
                serde_json::to_writer(&mut *out, row).map_err(|e| e.to_string())?;
                out.write_all(b"\n").map_err(|e| e.to_string())?;
                *rows += 1;
            }
            RowWriter::Csv { out, rows } => {
                out.write_record(cells(row)).map_err(|e| e.to_string())?;
                *rows += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<u64, String> {
        match self {
            RowWriter::Jsonl { mut out, rows } => out.flush().map(|_| rows),
            RowWriter::Csv { mut out, rows } => out.flush().map(|_| rows),
        }
        .map_err(|e| e.to_string())
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Categories as `a|b`, or as a JSON array when that would not read back the same.
fn categories(list: &[String]) -> String {
    if list.iter().any(|c| c.contains('|') || c.starts_with('[')) {
        serde_json::to_string(list).expect("strings serialise")
    } else {
        list.join("|")
    }
}

fn item_cells(i: &Item) -> Vec<String> {
    vec![
        i.id.clone(),
        categories(&i.categories),
        i.labels.to_string(),
        i.title.clone(),
        i.description.clone(),
        time(&i.timestamp),
        i.hidden.to_string(),
    ]
}

fn user_cells(u: &User) -> Vec<String> {
    vec![u.id.clone(), u.labels.to_string(), time(&u.created_at)]
}

fn feedback_cells(f: &Feedback) -> Vec<String> {
    vec![
        f.user_id.clone(),
        f.item_id.clone(),
        f.feedback_type.clone(),
        f.value.to_string(),
        time(&f.timestamp),
    ]
}
