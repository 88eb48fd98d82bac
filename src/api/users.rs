//! User routes: upsert one or a batch, get, patch, delete, list. Writes go through the catalogue.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{Json, ListParams, Path, Query, reject_duplicate_ids, validate_rows};
use crate::app::AppState;
use crate::rules::{UserInput, validate_id, validate_labels};
use crate::store::{Page, User, UserPatch};

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
    let users = validate_rows(inputs, |u, prefix| Ok(u.validate(prefix)?))?;
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
