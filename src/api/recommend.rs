//! Recommendation routes, answered from memory: no database round trip.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::extract::{Json, Path, Query, split_list, validate_id};
use crate::app::AppState;
use crate::config::RecommendConfig;
use crate::engine::{EngineKind, Fields, Request, Route, Scored};
use crate::orchestrator::Served;

const MAX_N: usize = 1000;
const MAX_LIST: usize = 1000;

/// `?n=&category=&exclude=&fields=`; `category`, `exclude` and `fields` may repeat or hold
/// comma-separated values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    n: Option<usize>,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// Item fields to return with each recommendation (see [`Fields::NAMES`]).
    #[serde(default)]
    fields: Vec<String>,
    /// `auto` (default), `fast`, `quality`, `enhanced`, `smart` or `popularity`.
    engine: Option<EngineKind>,
}

impl Params {
    /// For the item lists, which have no engine to choose.
    fn without_engine(self) -> Result<Self> {
        if self.engine.is_some() {
            return Err(Error::invalid(
                "engine",
                "only /api/recommend/{user_id} takes an engine",
            ));
        }
        Ok(self)
    }

    fn check(self, config: &RecommendConfig) -> Result<(Request, Fields)> {
        let n = self.n.unwrap_or(config.default_n);
        if !(1..=MAX_N).contains(&n) {
            return Err(Error::Invalid {
                code: "invalid_query",
                message: format!("n must be 1..={MAX_N} (got {n})"),
                field: Some("n".into()),
            });
        }
        let categories = split_list(&self.category);
        let exclude = split_list(&self.exclude);
        for (field, list) in [("category", &categories), ("exclude", &exclude)] {
            if list.len() > MAX_LIST {
                return Err(Error::invalid(
                    field,
                    format!("at most {MAX_LIST} values allowed"),
                ));
            }
            for v in list {
                validate_id(field, v)?;
            }
        }
        let not_before_ms = (config.item_ttl_days > 0.0).then(|| {
            chrono::Utc::now().timestamp_millis() - (config.item_ttl_days * 86_400_000.0) as i64
        });
        let request = Request {
            n,
            categories,
            exclude,
            not_before_ms,
        };
        Ok((request, item_fields(&self.fields)?))
    }
}

/// The item fields named by `fields=`; an unknown name is a 400 naming it.
fn item_fields(names: &[String]) -> Result<Fields> {
    let mut fields = Fields::default();
    for name in split_list(names) {
        if !fields.add(&name) {
            return Err(Error::invalid(
                "fields",
                format!(
                    "unknown item field '{}': one of {}",
                    name.chars().take(64).collect::<String>(),
                    Fields::NAMES.join(", ")
                ),
            ));
        }
    }
    Ok(fields)
}

/// The response of every recommendation route.
#[derive(Debug, Serialize)]
pub struct Recommendations {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// Which recommender answered.
    engine: &'static str,
    /// `smart`'s route for this user (`new_user`, `short_history`, `established`).
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<Route>,
    /// The experiment variant (`engine=auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<Arc<str>>,
    /// Answered from the per-user cache (`engine=auto`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    /// The chosen engine missed the deadline and `fast` answered (`engine=auto`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fallback: bool,
    items: Vec<Scored>,
}

impl Recommendations {
    fn list(engine: &'static str, items: Vec<Scored>) -> Self {
        Self {
            user_id: None,
            engine,
            route: None,
            variant: None,
            cached: false,
            fallback: false,
            items,
        }
    }

    fn served(user_id: Option<String>, served: Served) -> Self {
        Self {
            user_id,
            engine: served.rec.engine.name(),
            route: served.rec.route,
            variant: served.variant,
            cached: served.cached,
            fallback: served.fallback,
            items: served.rec.items,
        }
    }
}

pub async fn recommend(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    validate_id("user_id", &user_id)?;
    let kind = params.engine.unwrap_or(EngineKind::Auto);
    let (request, fields) = params.check(&state.config.recommend)?;
    let mut served = state.orchestrator.recommend(&user_id, request, kind).await;
    state.engine.describe(&mut served.rec.items, fields);
    Ok(Json(Recommendations::served(Some(user_id), served)))
}

pub async fn popular(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    let (request, fields) = params.without_engine()?.check(&state.config.recommend)?;
    let mut items = state.engine.popular(&request.query());
    state.engine.describe(&mut items, fields);
    Ok(Json(Recommendations::list("popularity", items)))
}

pub async fn latest(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    let (request, fields) = params.without_engine()?.check(&state.config.recommend)?;
    let mut items = state.engine.latest(&request.query());
    state.engine.describe(&mut items, fields);
    Ok(Json(Recommendations::list("latest", items)))
}

/// Items like one item.
pub async fn similar(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Similar>> {
    validate_id("id", &item_id)?;
    let (request, fields) = params.without_engine()?.check(&state.config.recommend)?;
    match state.engine.similar(&item_id, &request.query()) {
        Some(mut items) => {
            state.engine.describe(&mut items, fields);
            Ok(Json(Similar { item_id, items }))
        }
        None => Err(Error::not_found("item", &item_id, "id")),
    }
}

#[derive(Debug, Serialize)]
pub struct Similar {
    item_id: String,
    items: Vec<Scored>,
}

/// Most items an anonymous session may name.
const MAX_SESSION_ITEMS: usize = 1000;

/// Recommendations for an anonymous visitor from the items of their session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// Ids of the items the visitor interacted with, oldest first.
    items: Vec<String>,
    n: Option<usize>,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    engine: Option<EngineKind>,
}

pub async fn session(
    State(state): State<AppState>,
    Json(body): Json<SessionRequest>,
) -> Result<Json<Recommendations>> {
    if body.items.len() > MAX_SESSION_ITEMS {
        return Err(Error::invalid(
            "items",
            format!("at most {MAX_SESSION_ITEMS} items allowed"),
        ));
    }
    for (i, id) in body.items.iter().enumerate() {
        validate_id(&format!("items[{i}]"), id)?;
    }
    let params = Params {
        n: body.n,
        category: body.category,
        exclude: body.exclude,
        fields: body.fields,
        engine: None,
    };
    let (request, fields) = params.check(&state.config.recommend)?;
    let kind = body.engine.unwrap_or(EngineKind::Auto);
    let mut served = state
        .orchestrator
        .recommend_session(body.items, request, kind)
        .await;
    state.engine.describe(&mut served.rec.items, fields);
    Ok(Json(Recommendations::served(None, served)))
}
