//! Item routes: upsert one or a batch, get, patch, delete, list. Writes go through the catalogue.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{Json, ListParams, Path, Query, reject_duplicate_ids, validate_rows};
use crate::app::AppState;
use crate::rules::{ItemInput, validate_id, validate_item_fields};
use crate::store::{Item, ItemPatch, Page};

pub async fn upsert(
    State(state): State<AppState>,
    Json(input): Json<ItemInput>,
) -> Result<Json<Item>> {
    let item = input.validate("")?;
    state
        .catalogue
        .upsert_items(std::slice::from_ref(&item))
        .await?;
    Ok(Json(item))
}

pub async fn upsert_batch(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<ItemInput>>,
) -> Result<Json<Value>> {
    let items = validate_rows(inputs, |i, prefix| Ok(i.validate(prefix)?))?;
    reject_duplicate_ids(items.iter().map(|x| x.id.as_str()))?;
    state.catalogue.upsert_items(&items).await?;
    Ok(Json(json!({ "upserted": items.len() })))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Item>> {
    validate_id("id", &id)?;
    let item = state.store.get_item(&id).await?;
    item.map(Json)
        .ok_or_else(|| Error::not_found("item", &id, "id"))
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(patch): Json<ItemPatch>,
) -> Result<Json<Item>> {
    validate_id("id", &id)?;
    validate_item_fields(
        "",
        patch.categories.as_deref(),
        patch.labels.as_ref(),
        patch.title.as_deref(),
        patch.description.as_deref(),
    )?;
    let item = state.catalogue.patch_item(&id, &patch).await?;
    item.map(Json)
        .ok_or_else(|| Error::not_found("item", &id, "id"))
}

pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    validate_id("id", &id)?;
    match state.catalogue.delete_item(&id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::not_found("item", &id, "id")),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Item>>> {
    let (cursor, limit) = params.check()?;
    let page = state.store.list_items(cursor, limit).await?;
    Ok(Json(page))
}
