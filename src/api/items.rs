//! Item routes: upsert one or a batch, get, patch, delete, list.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{
    Json, Path, Query, reject_duplicate_ids, validate_batch, validate_id, validate_labels,
    validate_text,
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

impl ItemInput {
    /// Checks every field; `prefix` locates the item in a batch (`[3].`).
    fn validate(self, prefix: &str) -> Result<Item> {
        validate_id(&format!("{prefix}id"), &self.id)?;
        validate_categories(&format!("{prefix}categories"), &self.categories)?;
        validate_labels(&format!("{prefix}labels"), &self.labels)?;
        validate_text(&format!("{prefix}title"), &self.title, MAX_TITLE_BYTES)?;
        validate_text(
            &format!("{prefix}description"),
            &self.description,
            MAX_DESCRIPTION_BYTES,
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

/// Validates a whole batch before anything is written: the first bad row rejects it, named by index.
fn validate_all(inputs: Vec<ItemInput>) -> Result<Vec<Item>> {
    validate_batch(&inputs)?;
    let items = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| input.validate(&format!("[{i}].")))
        .collect::<Result<Vec<_>>>()?;
    reject_duplicate_ids(items.iter().map(|x| x.id.as_str()))?;
    Ok(items)
}

pub async fn upsert(
    State(state): State<AppState>,
    Json(input): Json<ItemInput>,
) -> Result<Json<Item>> {
    let item = input.validate("")?;
    state
        .store
        .upsert_items(std::slice::from_ref(&item))
        .await?;
    state.engine.upsert_items(std::slice::from_ref(&item));
    Ok(Json(item))
}

pub async fn upsert_batch(
    State(state): State<AppState>,
    Json(inputs): Json<Vec<ItemInput>>,
) -> Result<Json<Value>> {
    let items = validate_all(inputs)?;
    state.store.upsert_items(&items).await?;
    state.engine.upsert_items(&items);
    Ok(Json(json!({ "upserted": items.len() })))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Item>> {
    validate_id("id", &id)?;
    match state.store.get_item(&id).await? {
        Some(item) => Ok(Json(item)),
        None => Err(Error::not_found("item", &id, "id")),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(patch): Json<ItemPatch>,
) -> Result<Json<Item>> {
    validate_id("id", &id)?;
    if let Some(c) = &patch.categories {
        validate_categories("categories", c)?;
    }
    if let Some(l) = &patch.labels {
        validate_labels("labels", l)?;
    }
    if let Some(t) = &patch.title {
        validate_text("title", t, MAX_TITLE_BYTES)?;
    }
    if let Some(d) = &patch.description {
        validate_text("description", d, MAX_DESCRIPTION_BYTES)?;
    }
    match state.store.patch_item(&id, &patch).await? {
        Some(item) => {
            state.engine.upsert_items(std::slice::from_ref(&item));
            Ok(Json(item))
        }
        None => Err(Error::not_found("item", &id, "id")),
    }
}

pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    validate_id("id", &id)?;
    if state.store.delete_item(&id).await? {
        state.engine.delete_item(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found("item", &id, "id"))
    }
}

/// `?cursor=&limit=` of the list routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    pub fn limit(&self) -> Result<usize> {
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

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Item>>> {
    let limit = params.limit()?;
    Ok(Json(
        state
            .store
            .list_items(params.cursor.as_deref(), limit)
            .await?,
    ))
}
