//! The three kinds of rows reco imports and exports, their fields, and how a source row (a CSV
//! record, a JSON object, a SQL row) becomes a checked item, user or feedback row: each field is
//! read from its mapped column (or its default), converted to the field's type and checked by
//! `crate::rules`, exactly as the API checks a row.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::rules::{FeedbackInput, Invalid, ItemInput, UserInput};
use crate::store::{Feedback, Item, User};

/// What a file or query holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Items,
    Users,
    Feedback,
}

/// How a field's value is written in a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Text,
    /// Categories: `a|b|c` in text, or a JSON array.
    List,
    /// Labels: a JSON object (as text in CSV).
    Object,
    Number,
    Bool,
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][+zz]` (PostgreSQL's text form; UTC without a zone), or
    /// a Unix time in seconds (in milliseconds past 10^11).
    Time,
}

impl Kind {
    /// Every field of the kind, in the order exports write them, with its type.
    fn fields(self) -> &'static [(&'static str, Type)] {
        match self {
            Kind::Items => &[
                ("id", Type::Text),
                ("categories", Type::List),
                ("labels", Type::Object),
                ("title", Type::Text),
                ("description", Type::Text),
                ("timestamp", Type::Time),
                ("hidden", Type::Bool),
            ],
            Kind::Users => &[
                ("id", Type::Text),
                ("labels", Type::Object),
                ("created_at", Type::Time),
            ],
            Kind::Feedback => &[
                ("user_id", Type::Text),
                ("item_id", Type::Text),
                ("type", Type::Text),
                ("value", Type::Number),
                ("timestamp", Type::Time),
            ],
        }
    }

    /// The field names, in export order.
    pub fn columns(self) -> impl Iterator<Item = &'static str> {
        self.fields().iter().map(|(name, _)| *name)
    }

    /// Fields a row cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Kind::Items | Kind::Users => &["id"],
            Kind::Feedback => &["user_id", "item_id", "type"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Items => "items",
            Kind::Users => "users",
            Kind::Feedback => "feedback",
        }
    }
}

/// One value of a source row.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// A CSV cell (text, to be read as the field's type).
    Text(&'a str),
    /// A JSON value (JSON Lines, or a SQL column).
    Json(&'a Value),
}

/// A checked row, ready for the store.
#[derive(Debug, Clone)]
pub enum Row {
    Item(Item),
    User(User),
    Feedback(Feedback),
}

/// Which source column each field is read from, and the defaults of missing ones.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub kind: Kind,
    /// field → source column (a field not named here is read from the column of its own name).
    columns: HashMap<String, String>,
    /// field → the text used when the source has no such column or the cell is empty.
    defaults: HashMap<String, String>,
}

impl Mapping {
    /// From `--columns field=column,...` and `--default field=value,...`; a name that is no field
    /// of `kind` is an error naming the fields there are.
    pub fn new(kind: Kind, columns: &[String], defaults: &[String]) -> Result<Self, String> {
        let pairs = |list: &[String], what: &str| -> Result<HashMap<String, String>, String> {
            let mut out = HashMap::new();
            for pair in list
                .iter()
                .flat_map(|l| l.split(','))
                .filter(|p| !p.is_empty())
            {
                let (field, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{what} {pair:?}: expected field=value"))?;
                let field = field.trim();
                if !kind.columns().any(|c| c == field) {
                    return Err(format!(
                        "{what}: {} has no field {field:?} (fields: {})",
                        kind.name(),
                        kind.columns().collect::<Vec<_>>().join(", ")
                    ));
                }
                out.insert(field.to_string(), value.trim().to_string());
            }
            Ok(out)
        };
        Ok(Mapping {
            kind,
            columns: pairs(columns, "--columns")?,
            defaults: pairs(defaults, "--default")?,
        })
    }

    /// The column `field` is read from.
    pub fn column<'a>(&'a self, field: &'a str) -> &'a str {
        self.columns.get(field).map_or(field, String::as_str)
    }

    /// Checks, before any row is read, that every required field has a column among `header`
    /// or a default (CSV and SQL sources know their columns up front).
    pub fn check_header<'h>(
        &self,
        header: impl IntoIterator<Item = &'h str>,
    ) -> Result<(), String> {
        let header: Vec<&str> = header.into_iter().collect();
        for field in self.kind.required() {
            let column = self.column(field);
            if !header.contains(&column) && !self.defaults.contains_key(*field) {
                return Err(format!(
                    "{} need a {field:?} field: no column {column:?} among {header:?} (map one \
                     with --columns {field}=COLUMN, or give --default {field}=VALUE)",
                    self.kind.name()
                ));
            }
        }
        Ok(())
    }

    /// The checked row read through `get` (a source row by column name). Errors name the field
    /// (and its column when it is mapped).
    pub fn row<'r>(
        &self,
        get: impl Fn(&str) -> Option<Cell<'r>>,
        latest: DateTime<Utc>,
    ) -> Result<Row, Invalid> {
        let mut object = Map::new();
        let mut created_at = None;
        for &(field, ty) in self.kind.fields() {
            let column = self.column(field);
            let named = |message: String| Invalid {
                field: if column == field {
                    field.to_string()
                } else {
                    format!("{field} (column {column})")
                },
                message,
            };
            let value = match get(column).filter(|c| !is_empty(c)) {
                Some(cell) => convert(cell, ty).map_err(named)?,
                None => match self.defaults.get(field) {
                    Some(text) => convert(Cell::Text(text), ty).map_err(named)?,
                    None => continue,
                },
            };
            if field == "created_at" {
                created_at = Some(value);
            } else {
                object.insert(field.to_string(), value);
            }
        }
        let object = Value::Object(object);
        let shape = |e: serde_json::Error| Invalid {
            field: "row".into(),
            message: e.to_string(),
        };
        Ok(match self.kind {
            Kind::Items => {
                let input: ItemInput = serde_json::from_value(object).map_err(shape)?;
                Row::Item(input.validate("")?)
            }
            Kind::Users => {
                let input: UserInput = serde_json::from_value(object).map_err(shape)?;
                let mut user = input.validate("")?;
                if let Some(Value::String(t)) = created_at {
                    user.created_at = t.parse().unwrap_or(user.created_at);
                }
                Row::User(user)
            }
            Kind::Feedback => {
                let input: FeedbackInput = serde_json::from_value(object).map_err(shape)?;
                Row::Feedback(input.validate("", latest)?)
            }
        })
    }
}

fn is_empty(cell: &Cell<'_>) -> bool {
    match cell {
        Cell::Text(t) => t.is_empty(),
        Cell::Json(v) => v.is_null(),
    }
}

/// A cell as the JSON value of a field of type `ty`.
fn convert(cell: Cell<'_>, ty: Type) -> Result<Value, String> {
    let text = match cell {
        Cell::Text(t) => t,
        Cell::Json(v) => match (v, ty) {
            (Value::String(s), _) => s.as_str(),
            (Value::Number(n), Type::Text) => return Ok(Value::String(n.to_string())),
            (Value::Number(_), Type::Number) | (Value::Bool(_), Type::Bool) => return Ok(v.clone()),
            (Value::Array(_), Type::List) | (Value::Object(_), Type::Object) => {
                return Ok(v.clone());
            }
            (Value::Number(n), Type::Time) => {
                return n
                    .as_f64()
                    .and_then(unix_time)
                    .map(time_value)
                    .ok_or_else(|| format!("not a time: {n}"));
            }
            _ => {
                return Err(format!(
                    "expected {}, got {}",
                    type_name(ty),
                    shorten(&v.to_string())
                ));
            }
        },
    };
    match ty {
        Type::Text => Ok(Value::String(text.to_string())),
        Type::List if text.starts_with('[') => serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_array)
            .ok_or_else(|| format!("not a JSON array: {}", shorten(text))),
        Type::List => Ok(Value::Array(
            text.split('|')
                .map(|c| Value::String(c.to_string()))
                .collect(),
        )),
        Type::Object => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("not JSON ({e}): {}", shorten(text))),
        Type::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("not a finite number: {}", shorten(text))),
        Type::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => Ok(Value::Bool(true)),
            "false" | "f" | "0" | "no" | "n" => Ok(Value::Bool(false)),
            _ => Err(format!("not a boolean: {}", shorten(text))),
        },
        Type::Time => parse_time(text)
            .map(time_value)
            .ok_or_else(|| format!("not a time: {}", shorten(text))),
    }
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::Text => "text",
        Type::List => "a list",
        Type::Object => "a JSON object",
        Type::Number => "a number",
        Type::Bool => "a boolean",
        Type::Time => "a time",
    }
}

/// At most 80 characters of a bad value, for an error message.
fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(80).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    format!("{s:?}")
}

fn time_value(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Seconds since 1970, or milliseconds when past 10^11 (which as seconds is the year 5138).
fn unix_time(n: f64) -> Option<DateTime<Utc>> {
    let ms = if n.abs() >= 1e11 { n } else { n * 1000.0 };
    ms.is_finite()
        .then(|| DateTime::from_timestamp_millis(ms.round() as i64))
        .flatten()
}

/// A time in any of the forms [`Type::Time`] names.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.to_utc());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    text.parse::<f64>().ok().and_then(unix_time)
}
