//! Recommendation routes, answered from memory: no database round trip.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::extract::{Json, Path, Query, split_list, validate_id};
use crate::app::AppState;
use crate::config::RecommendConfig;
use crate::engine::{self, EngineKind, Scored, Who};

const MAX_N: usize = 1000;
const MAX_LIST: usize = 1000;

/// `?n=&category=&exclude=`; `category` and `exclude` may repeat or hold comma-separated values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    n: Option<usize>,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// `auto` (default), `fast`, `quality` or `popularity`; only on the per-user route.
    engine: Option<EngineKind>,
}

struct Checked {
    n: usize,
    categories: Vec<String>,
    exclude: Vec<String>,
    /// Item time-to-live cut-off (epoch ms), from `recommend.item_ttl_days`.
    not_before_ms: Option<i64>,
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

    fn check(self, config: &RecommendConfig) -> Result<Checked> {
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
        Ok(Checked {
            n,
            categories,
            exclude,
            not_before_ms,
        })
    }
}

impl Checked {
    fn query(&self) -> engine::Query<'_> {
        engine::Query {
            n: self.n,
            categories: &self.categories,
            exclude: &self.exclude,
            not_before_ms: self.not_before_ms,
        }
    }
}

/// The response of every recommendation route.
#[derive(Debug, Serialize)]
pub struct Recommendations {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// Which recommender answered.
    engine: &'static str,
    items: Vec<Scored>,
}

pub async fn recommend(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    validate_id("user_id", &user_id)?;
    let kind = params.engine.unwrap_or(EngineKind::Auto);
    let checked = params.check(&state.config.recommend)?;
    let (served_by, items) = recommend_timed(&state, Who::User(&user_id), &checked, kind);
    Ok(Json(Recommendations {
        user_id: Some(user_id),
        engine: served_by.name(),
        items,
    }))
}

pub async fn popular(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    let checked = params.without_engine()?.check(&state.config.recommend)?;
    Ok(Json(Recommendations {
        user_id: None,
        engine: "popularity",
        items: state.engine.popular(&checked.query()),
    }))
}

pub async fn latest(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Recommendations>> {
    let checked = params.without_engine()?.check(&state.config.recommend)?;
    Ok(Json(Recommendations {
        user_id: None,
        engine: "latest",
        items: state.engine.latest(&checked.query()),
    }))
}

/// Items like one item.
pub async fn similar(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Similar>> {
    validate_id("id", &item_id)?;
    let checked = params.without_engine()?.check(&state.config.recommend)?;
    match state.engine.similar(&item_id, &checked.query()) {
        Some(items) => Ok(Json(Similar { item_id, items })),
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
        engine: None,
    };
    let checked = params.check(&state.config.recommend)?;
    let kind = body.engine.unwrap_or(EngineKind::Auto);
    let (served_by, items) = recommend_timed(&state, Who::Session(&body.items), &checked, kind);
    Ok(Json(Recommendations {
        user_id: None,
        engine: served_by.name(),
        items,
    }))
}

/// Asks the engine and records which engine served and how long it took.
fn recommend_timed(
    state: &AppState,
    who: Who<'_>,
    checked: &Checked,
    kind: EngineKind,
) -> (EngineKind, Vec<Scored>) {
    let started = std::time::Instant::now();
    let (served_by, items) = state.engine.recommend(who, &checked.query(), kind);
    state
        .metrics
        .record_engine(served_by.name(), started.elapsed().as_secs_f64());
    (served_by, items)
}
