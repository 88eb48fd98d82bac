//! User routes: upsert one or a batch, get, patch, delete, list.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{
    Json, Path, Query, reject_duplicate_ids, validate_batch, validate_id, validate_labels,
};
use super::items::{ListParams, empty_object};
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
        .store
        .upsert_users(std::slice::from_ref(&user))
        .await?;
    state.engine.ensure_users([user.id.as_str()]);
    // Return what is stored: an existing user keeps their creation time.
    Ok(Json(state.store.get_user(&user.id).await?.unwrap_or(user)))
}

pub async fn upsert_batch(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<UserInput>>,
) -> Result<Json<Value>> {
    validate_batch(&inputs)?;
    let users = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| input.validate(&format!("[{i}].")))
        .collect::<Result<Vec<_>>>()?;
    reject_duplicate_ids(users.iter().map(|x| x.id.as_str()))?;
    state.store.upsert_users(&users).await?;
    state
        .engine
        .ensure_users(users.iter().map(|u| u.id.as_str()));
    Ok(Json(json!({ "upserted": users.len() })))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<User>> {
    validate_id("id", &id)?;
    match state.store.get_user(&id).await? {
        Some(user) => Ok(Json(user)),
        None => Err(Error::not_found("user", &id, "id")),
    }
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
    match state.store.patch_user(&id, &patch).await? {
        Some(user) => Ok(Json(user)),
        None => Err(Error::not_found("user", &id, "id")),
    }
}

pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    validate_id("id", &id)?;
    if state.store.delete_user(&id).await? {
        state.engine.delete_user(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found("user", &id, "id"))
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<User>>> {
    let limit = params.limit()?;
    Ok(Json(
        state
            .store
            .list_users(params.cursor.as_deref(), limit)
            .await?,
    ))
}
