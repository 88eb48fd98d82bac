//! Feedback routes: insert a batch and delete (through the catalogue; inserts use group commit),
//! list by user or item.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{Json, ListParams, Path, Query, validate_id, validate_rows};
use crate::app::AppState;
use crate::store::{Feedback, FeedbackOf, Page};

const MAX_TYPE_BYTES: usize = 64;

/// One feedback event as sent by a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    user_id: String,
    item_id: String,
    #[serde(rename = "type")]
    feedback_type: String,
    #[serde(default = "one")]
    value: f64,
    timestamp: Option<DateTime<Utc>>,
}

fn one() -> f64 {
    1.0
}

fn validate_type(field: &str, t: &str) -> Result<()> {
    validate_id(field, t)?;
    if t.len() > MAX_TYPE_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TYPE_BYTES} bytes"),
        ));
    }
    Ok(())
}

impl FeedbackInput {
    /// Checks every field; a timestamp may be at most `latest` (now plus the allowed skew).
    fn validate(self, prefix: &str, latest: DateTime<Utc>) -> Result<Feedback> {
        validate_id(&format!("{prefix}user_id"), &self.user_id)?;
        validate_id(&format!("{prefix}item_id"), &self.item_id)?;
        validate_type(&format!("{prefix}type"), &self.feedback_type)?;
        if !self.value.is_finite() {
            return Err(Error::invalid(
                format!("{prefix}value"),
                "must be a finite number",
            ));
        }
        if let Some(t) = self.timestamp
            && t > latest
        {
            return Err(Error::invalid(
                format!("{prefix}timestamp"),
                format!(
                    "must not be later than now plus feedback.max_future_skew ({})",
                    latest.to_rfc3339()
                ),
            ));
        }
        Ok(Feedback {
            user_id: self.user_id,
            item_id: self.item_id,
            feedback_type: self.feedback_type,
            value: self.value,
            timestamp: self.timestamp.unwrap_or_else(Utc::now),
        })
    }
}

/// Inserts a batch. Answers only after the rows are committed (group commit).
pub async fn insert(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<FeedbackInput>>,
) -> Result<Json<Value>> {
    let skew = state.config.feedback.max_future_skew;
    let latest = Utc::now() + chrono::Duration::milliseconds((skew * 1000.0) as i64);
    let rows = validate_rows(inputs, |f, prefix| f.validate(prefix, latest))?;
    let n = state.catalogue.insert_feedback(rows).await?;
    Ok(Json(json!({ "inserted": n })))
}

async fn list(
    state: &AppState,
    of: FeedbackOf,
    id: &str,
    params: &ListParams,
) -> Result<Json<Page<Feedback>>> {
    validate_id("id", id)?;
    let (cursor, limit) = params.check()?;
    let page = state.store.list_feedback(of, id, cursor, limit).await?;
    Ok(Json(page))
}

pub async fn list_by_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Feedback>>> {
    list(&state, FeedbackOf::User, &id, &params).await
}

pub async fn list_by_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Feedback>>> {
    list(&state, FeedbackOf::Item, &id, &params).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    #[serde(rename = "type")]
    feedback_type: Option<String>,
}

/// Deletes a user's feedback on an item: one type with `?type=`, else every type.
pub async fn remove(
    State(state): State<AppState>,
    Path((user_id, item_id)): Path<(String, String)>,
    Query(params): Query<DeleteParams>,
) -> Result<Json<Value>> {
    validate_id("user_id", &user_id)?;
    validate_id("item_id", &item_id)?;
    if let Some(t) = &params.feedback_type {
        validate_type("type", t)?;
    }
    let deleted = state
        .catalogue
        .delete_feedback(&user_id, &item_id, params.feedback_type.as_deref())
        .await?;
    if deleted.is_empty() {
        return Err(Error::NotFound {
            message: format!("no feedback of user {user_id:?} on item {item_id:?}"),
            field: None,
        });
    }
    Ok(Json(json!({ "deleted": deleted.len() })))
}
