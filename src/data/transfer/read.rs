//! Reading CSV and JSON Lines files (or standard input) into checked batches, on a blocking
//! thread: it parses the next batch while the writer commits the previous one, and holds at most
//! two batches at a time, so memory stays flat however long the file is.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::batch::{Batch, Batcher, Problem};
use super::schema::Cell;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    /// JSON Lines: one JSON object per line.
    Jsonl,
}

impl Format {
    /// The format a path's extension names (`.csv`; `.jsonl`, `.ndjson`, `.json`).
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Why a source stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// A bad row (without `--skip-bad`); every row before it was sent.
    Bad(Problem),
    /// The source itself failed: unreadable file, a header without a required column, a query
    /// that failed.
    Failed(String),
}

/// What a source sends the writer.
pub type Sent = Result<Batch, Stop>;

/// Reads `path` (`None`: standard input) and sends its batches to `tx`. Runs on a blocking
/// thread; returns when the file ends, a row stops it, or the writer hung up.
pub fn read_file(path: Option<PathBuf>, format: Format, batcher: Batcher, tx: mpsc::Sender<Sent>) {
    let input: Box<dyn Read> = match &path {
        Some(p) => match File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                let _ = tx.blocking_send(Err(Stop::Failed(format!("{}: {e}", p.display()))));
                return;
            }
        },
        None => Box::new(std::io::stdin()),
    };
    let input = BufReader::with_capacity(1 << 16, input);
    let mut sink = Sink { batcher, tx };
    let outcome = match format {
        Format::Csv => read_csv(input, &mut sink),
        Format::Jsonl => read_jsonl(input, &mut sink),
    };
    sink.finish(outcome);
}

/// The batcher and the channel a reader feeds.
struct Sink {
    batcher: Batcher,
    tx: mpsc::Sender<Sent>,
}

/// How a reader ended: `Ok` at the end of its input, `Err` on a stop. `Hangup`: the writer is gone.
type Outcome = Result<(), Option<Stop>>;

impl Sink {
    fn send(&self, batch: Batch) -> Outcome {
        self.tx.blocking_send(Ok(batch)).map_err(|_| None)
    }

    fn push<'r>(&mut self, line: u64, get: impl Fn(&str) -> Option<Cell<'r>>) -> Outcome {
        match self.batcher.push(line, get) {
            Ok(Some(batch)) => self.send(batch),
            Ok(None) => Ok(()),
            Err(problem) => Err(Some(Stop::Bad(problem))),
        }
    }

    fn bad(&mut self, line: u64, message: String) -> Outcome {
        self.batcher
            .bad(Problem { line, message })
            .map_err(|p| Some(Stop::Bad(p)))
    }

    /// Sends what is left, then the stop if there was one.
    fn finish(mut self, outcome: Outcome) {
        let rest = self.batcher.take();
        if (!rest.is_empty() || rest.skipped > 0) && self.send(rest).is_err() {
            return;
        }
        if let Err(Some(stop)) = outcome {
            let _ = self.tx.blocking_send(Err(stop));
        }
    }
}

fn read_csv(input: impl Read, sink: &mut Sink) -> Outcome {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| Some(Stop::Failed(format!("CSV header: {e}"))))?
        .clone();
    sink.batcher
        .mapping()
        .check_header(header.iter())
        .map_err(|e| Some(Stop::Failed(e)))?;
    // Each column's position, found once rather than per cell.
    let columns: std::collections::HashMap<&str, usize> =
        header.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let get = |column: &str| record.get(*columns.get(column)?).map(Cell::Text);
                sink.push(line, get)?;
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => return Err(Some(Stop::Failed(e.to_string()))),
                _ => {
                    let line = e.position().map_or(line, |p| p.line());
                    sink.bad(line, format!("not a CSV row: {e}"))?;
                }
            },
        }
    }
}

fn read_jsonl(mut input: impl BufRead, sink: &mut Sink) -> Outcome {
    let mut text = String::new();
    let mut line = 0;
    loop {
        text.clear();
        line += 1;
        match input.read_line(&mut text) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                sink.bad(line, "not UTF-8 text".into())?;
                continue;
            }
            Err(e) => return Err(Some(Stop::Failed(e.to_string()))),
        }
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Map<String, Value>>(&text) {
            Ok(object) => sink.push(line, |column| object.get(column).map(Cell::Json))?,
            Err(e) => sink.bad(line, format!("not a JSON object: {e}"))?,
        }
    }
}
