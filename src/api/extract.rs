//! Request extractors that turn every kind of bad input into an [`Error`] naming the field, and
//! the validation rules shared by the routes.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::error::Error;

/// Most rows in one batch call.
pub const MAX_BATCH: usize = 10_000;

/// A JSON body. Syntax errors, wrong types and missing or unknown fields become 400 with the JSON
/// path of the offending field; a body over the limit becomes 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit }
            } else {
                Error::Invalid {
                    code: "invalid_body",
                    message: rejection.body_text(),
                    field: None,
                }
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// The configured body limit, put in the request extensions so the 413 message can state it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Parses JSON, reporting the path of the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = match inner.classify() {
            serde_json::error::Category::Data => "invalid_field",
            _ => "invalid_json",
        };
        let field = (path != ".").then_some(path);
        Error::Invalid {
            code,
            message: inner.to_string(),
            field,
        }
    })?;
    de.end().map_err(|e| Error::Invalid {
        code: "invalid_json",
        message: e.to_string(),
        field: None,
    })?;
    Ok(value)
}

/// Query parameters. Repeated keys fill lists (`?category=a&category=b`); wrong types and unknown
/// parameters become 400 naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or("");
        // Valid queries (nearly all) skip the path tracking; a bad one is parsed again with it,
        // to name the parameter.
        if let Ok(value) = serde_html_form::from_bytes(query.as_bytes()) {
            return Ok(Query(value));
        }
        let de = serde_html_form::Deserializer::from_bytes(query.as_bytes());
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = if path == "." {
                    // Unknown parameters are reported at the top level; name them from the message.
                    message.split('`').nth(1).map(str::to_owned)
                } else {
                    Some(path)
                };
                Error::Invalid {
                    code: "invalid_query",
                    message,
                    field,
                }
            })
    }
}

/// Path parameters; each id is checked against `rules::validate_id` by the handler that names it.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r| Error::Invalid {
                code: "invalid_path",
                message: r.body_text(),
                field: None,
            })
    }
}

use crate::rules::reject_nul;
pub use crate::rules::validate_id;

/// A batch: non-empty and at most [`MAX_BATCH`] rows.
pub fn validate_batch<T>(rows: &[T]) -> Result<(), Error> {
    if rows.is_empty() {
        return Err(Error::Invalid {
            code: "invalid_batch",
            message: "batch must not be empty".into(),
            field: None,
        });
    }
    if rows.len() > MAX_BATCH {
        return Err(Error::Invalid {
            code: "batch_too_large",
            message: format!("batch has {} rows; at most {MAX_BATCH} allowed", rows.len()),
            field: None,
        });
    }
    Ok(())
}

/// Splits list parameters given as repeated keys and/or comma-separated values.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        // axum's `Json` starts from a 128-byte buffer, which a page of ten recommendations
        // outgrew three times (each a copy); a kilobyte holds a page, and `Bytes` takes the
        // vector as it is.
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => Error::Internal(format!("serialising a response: {e}")).into_response(),
        }
    }
}

/// `?cursor=&limit=` of the list routes.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    /// The cursor (at most 1 KiB, no NUL) and the limit, validated.
    pub fn check(&self) -> Result<(Option<&str>, usize), Error> {
        if let Some(c) = &self.cursor {
            if c.len() > 1024 {
                return Err(Error::invalid("cursor", "must be at most 1024 bytes"));
            }
            reject_nul("cursor", c)?;
        }
        Ok((self.cursor.as_deref(), self.limit()?))
    }

    fn limit(&self) -> Result<usize, Error> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(Error::Invalid {
                code: "invalid_query",
                message: format!("limit must be 1..={} (got {n})", Self::MAX_LIMIT),
                field: Some("limit".into()),
            }),
        }
    }
}

/// Validates a whole batch before anything is written: [`validate_batch`]'s size rules, then each
/// row with `validate` (given the row's prefix, `[3].`); the first bad row rejects it.
pub fn validate_rows<I, T>(
    inputs: Vec<I>,
    validate: impl Fn(I, &str) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    validate_batch(&inputs)?;
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| validate(input, &format!("[{i}].")))
        .collect()
}

/// Rejects a batch that names the same id twice (the second occurrence is the one reported).
pub fn reject_duplicate_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(Error::invalid(
                format!("[{i}].id"),
                format!("duplicate id {id:?} in batch"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Row {
            id: String,
            n: u32,
        }
        let Err(Error::Invalid { field, code, .. }) =
            parse_json::<Vec<Row>>(br#"[{"id":"a","n":1},{"id":"b","n":"x"}]"#)
        else {
            panic!()
        };
        assert_eq!((field.as_deref(), code), (Some("[1].n"), "invalid_field"));
        let Err(Error::Invalid { code, .. }) = parse_json::<Vec<Row>>(b"[{") else {
            panic!()
        };
        assert_eq!(code, "invalid_json");
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(
            split_list(&["a,b".into(), "c".into(), " ,".into()]),
            ["a", "b", "c"]
        );
    }
}
