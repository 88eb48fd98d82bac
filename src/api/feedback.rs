//! Feedback routes: insert a batch and delete (through the catalogue; inserts use group commit),
//! list by user or item.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{Json, ListParams, Path, Query, validate_rows};
use crate::app::AppState;
use crate::rules::{FeedbackInput, latest_feedback_time, validate_id, validate_type};
use crate::store::{Feedback, FeedbackOf, Page};

/// Inserts a batch. Answers only after the rows are committed (group commit).
pub async fn insert(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<FeedbackInput>>,
) -> Result<Json<Value>> {
    let latest = latest_feedback_time(state.config.feedback.max_future_skew);
    let rows = validate_rows(inputs, |f, prefix| Ok(f.validate(prefix, latest)?))?;
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
