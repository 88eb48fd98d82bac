//! User routes: upsert one or a batch, get, patch, delete, list. Writes go through the catalogue.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{
    Json, ListParams, Path, Query, reject_duplicate_ids, validate_id, validate_labels,
    validate_rows,
};
use super::items::empty_object;
use crate::app::AppState;
use crate::store::{Page, User, UserPatch};

/// A user as sent by a client: only `id` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    id: String,
    #[serde(default = "empty_object")]
    labels: Value,
}

impl UserInput {
    fn validate(self, prefix: &str) -> Result<User> {
        validate_id(&format!("{prefix}id"), &self.id)?;
        validate_labels(&format!("{prefix}labels"), &self.labels)?;
        Ok(User {
            id: self.id,
            labels: self.labels,
            created_at: Utc::now(),
        })
    }
}

pub async fn upsert(
    State(state): State<AppState>,
    Json(input): Json<UserInput>,
) -> Result<Json<User>> {
    let user = input.validate("")?;
    state
        .catalogue
        .upsert_users(std::slice::from_ref(&user))
        .await?;
    // Return what is stored: an existing user keeps their creation time.
    Ok(Json(state.store.get_user(&user.id).await?.unwrap_or(user)))
}

pub async fn upsert_batch(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<UserInput>>,
) -> Result<Json<Value>> {
    let users = validate_rows(inputs, UserInput::validate)?;
    reject_duplicate_ids(users.iter().map(|x| x.id.as_str()))?;
    state.catalogue.upsert_users(&users).await?;
    Ok(Json(json!({ "upserted": users.len() })))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<User>> {
    validate_id("id", &id)?;
    let user = state.store.get_user(&id).await?;
    user.map(Json)
        .ok_or_else(|| Error::not_found("user", &id, "id"))
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(patch): Json<UserPatch>,
) -> Result<Json<User>> {
    validate_id("id", &id)?;
    if let Some(l) = &patch.labels {
        validate_labels("labels", l)?;
    }
    let user = state.catalogue.patch_user(&id, &patch).await?;
    user.map(Json)
        .ok_or_else(|| Error::not_found("user", &id, "id"))
}

pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    validate_id("id", &id)?;
    match state.catalogue.delete_user(&id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::not_found("user", &id, "id")),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<User>>> {
    let (cursor, limit) = params.check()?;
    let page = state.store.list_users(cursor, limit).await?;
    Ok(Json(page))
}
