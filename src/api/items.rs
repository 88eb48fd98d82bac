//! Item routes: upsert one or a batch, get, patch, delete, list. Writes go through the catalogue.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{
    Json, ListParams, Path, Query, reject_duplicate_ids, validate_id, validate_labels,
    validate_rows, validate_text,
};
use crate::app::AppState;
use crate::store::{Item, ItemPatch, Page};

const MAX_CATEGORIES: usize = 100;
const MAX_TITLE_BYTES: usize = 4 * 1024;
const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;

/// An item as sent by a client: only `id` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    id: String,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default = "empty_object")]
    labels: Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    hidden: bool,
}

pub(super) fn empty_object() -> Value {
    json!({})
}

fn validate_categories(field: &str, categories: &[String]) -> Result<()> {
    if categories.len() > MAX_CATEGORIES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_CATEGORIES} categories allowed"),
        ));
    }
    for (i, c) in categories.iter().enumerate() {
        validate_id(&format!("{field}[{i}]"), c)?;
    }
    Ok(())
}

/// The free-text and list fields an item and a patch share; `prefix` locates them in a batch.
fn validate_fields(
    prefix: &str,
    categories: Option<&[String]>,
    labels: Option<&Value>,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<()> {
    if let Some(c) = categories {
        validate_categories(&format!("{prefix}categories"), c)?;
    }
    if let Some(l) = labels {
        validate_labels(&format!("{prefix}labels"), l)?;
    }
    if let Some(t) = title {
        validate_text(&format!("{prefix}title"), t, MAX_TITLE_BYTES)?;
    }
    if let Some(d) = description {
        validate_text(&format!("{prefix}description"), d, MAX_DESCRIPTION_BYTES)?;
    }
    Ok(())
}

impl ItemInput {
    /// Checks every field; `prefix` locates the item in a batch (`[3].`).
    fn validate(self, prefix: &str) -> Result<Item> {
        validate_id(&format!("{prefix}id"), &self.id)?;
        validate_fields(
            prefix,
            Some(&self.categories),
            Some(&self.labels),
            Some(&self.title),
            Some(&self.description),
        )?;
        Ok(Item {
            id: self.id,
            categories: self.categories,
            labels: self.labels,
            title: self.title,
            description: self.description,
            timestamp: self.timestamp.unwrap_or_else(Utc::now),
            hidden: self.hidden,
        })
    }
}

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
    let items = validate_rows(inputs, ItemInput::validate)?;
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
    validate_fields(
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
