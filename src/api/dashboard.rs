//! The dashboard: one embedded page (`GET /dashboard`, no CDN) and the admin routes it reads:
//! `/api/admin/dashboard` (polled every second: pool, per-engine latency histograms, feedback and
//! experiment counters, training runs with their validation scores) and
//! `/api/admin/users/{id}/overview` (the "look at a user" panel: their newest history rows and
//! every engine's list for them side by side). "Look at an item" reads the public
//! `/api/items/{id}` and `/api/items/{id}/similar` routes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::extract::{Json, Path, Query};
use crate::app::AppState;
use crate::engine::{EngineKind, Fields, Request};
use crate::metrics::{EngineLabel, LATENCY_BUCKETS};
use crate::orchestrator::DEFAULT_VARIANT;
use crate::rules::validate_id;

/// The engines a user's overview shows side by side.
const OVERVIEW_ENGINES: [EngineKind; 5] = [
    EngineKind::Fast,
    EngineKind::Quality,
    EngineKind::Enhanced,
    EngineKind::Smart,
    EngineKind::Popularity,
];
/// Most history rows and recommendations an overview shows.
const MAX_OVERVIEW: usize = 50;

/// The dashboard page: it holds no data itself, so it is open; the data routes ask for the API
/// key when one is set.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/dashboard.html"),
    )
}

/// What the dashboard draws (admin): pool status; per engine, its latency histogram (bucket
/// counts, so the page takes p50 and p99 of each interval); feedback rows committed; per
/// experiment variant, requests, impressions and clicks; the latest training runs and the
/// cluster size.
pub async fn data(State(state): State<AppState>) -> Json<Value> {
    let serving: Vec<&'static str> = EngineKind::serving().map(|k| k.name()).collect();
    let engines: serde_json::Map<String, Value> = serving
        .iter()
        .map(|&engine| {
            let label = EngineLabel { engine };
            let histogram = state.metrics.engine_seconds.get_or_create(&label);
            let mut summary = json!(histogram.summary());
            summary["buckets"] = json!(histogram.bucket_counts());
            (engine.to_string(), summary)
        })
        .collect();
    let variants = &state.config.orchestrator.variants;
    let names: Vec<&str> = if variants.is_empty() {
        vec![DEFAULT_VARIANT]
    } else {
        variants.iter().map(|v| v.name.as_str()).collect()
    };
    let experiments: Vec<Value> = names
        .iter()
        .map(|&name| {
            let (requests, impressions, clicks) = state.metrics.variant_totals(name, &serving);
            let engine = variants
                .iter()
                .find(|v| v.name == name)
                .map_or("smart", |v| v.engine.name());
            json!({ "variant": name, "engine": engine, "requests": requests,
                    "impressions": impressions, "clicks": clicks })
        })
        .collect();
    let cluster = match &state.cluster {
        Some(c) => json!({ "id": c.id(), "budget": c.budget(), "replicas": c.live_replicas() }),
        None => Value::Null,
    };
    Json(json!({
        "at_ms": chrono::Utc::now().timestamp_millis(),
        "pool": state.pool.status(),
        "latency_bounds_seconds": LATENCY_BUCKETS,
        "engines": engines,
        "feedback_rows": state.metrics.feedback_rows.get(),
        "experiments": experiments,
        "training": state.metrics.recent_runs(),
        "snapshot_version": state.engine.snapshot().map(|s| s.version),
        "cluster": cluster,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewParams {
    n: Option<usize>,
}

/// One user as the dashboard shows them (admin): their newest history rows (titles and
/// categories from memory) and each engine's list for them with reasons and titles. The lists go
/// through the orchestrator like any request (its workers and deadline bound them).
pub async fn user_overview(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<OverviewParams>,
) -> Result<Json<Value>> {
    validate_id("id", &user_id)?;
    let n = params.n.unwrap_or(10);
    if !(1..=MAX_OVERVIEW).contains(&n) {
        return Err(Error::invalid("n", format!("must be 1..={MAX_OVERVIEW}")));
    }
    let history = state
        .engine
        .recent_history(&user_id, MAX_OVERVIEW)
        .ok_or_else(|| Error::not_found("user", &user_id, "id"))?;
    let fields = Fields {
        title: true,
        categories: true,
        ..Fields::default()
    };
    let mut lists = serde_json::Map::new();
    for kind in OVERVIEW_ENGINES {
        let request = Request {
            n,
            ..Request::default()
        };
        let mut served = state.orchestrator.recommend(&user_id, request, kind).await;
        state.engine.describe(&mut served.rec.items, fields);
        lists.insert(
            kind.name().to_string(),
            json!({ "engine": served.rec.engine.name(), "route": served.rec.route,
                    "fallback": served.fallback, "items": served.rec.items }),
        );
    }
    Ok(Json(json!({
        "user_id": user_id,
        "history": history,
        "engines": lists,
    })))
}
