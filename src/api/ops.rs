//! Operational routes: liveness, readiness, Prometheus metrics and the pool's state.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::Error;
use super::extract::{Json, Path};
use crate::app::AppState;
use crate::cluster::Cluster;
use crate::db::Rebuilt;

/// The process is up. Also the trivial handler the benchmarks compare recommend against.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and every migration is applied; 503 otherwise.
pub async fn ready(State(state): State<AppState>) -> Response {
    // Ceiling 0: the cluster budget has no room for this replica (see `cluster::membership`).
    let parked = state.pool.ceiling() == 0;
    let ping = if parked {
        Err(crate::db::Error::Busy {
            waited: std::time::Duration::ZERO,
        })
    } else {
        state.pool.ping().await
    };
    let migrations = match &ping {
        Ok(_) => state.store.migrations_current().await.ok(),
        Err(_) => None,
    };
    let failures = state.task_failures();
    let ok = ping.is_ok() && migrations == Some(true) && failures.is_empty();
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "stopped_tasks": failures
            .iter()
            .map(|(task, reason)| json!({ "task": task, "reason": reason }))
            .collect::<Vec<_>>(),
        "database": match &ping {
            Ok(rtt) => json!({ "reachable": true, "round_trip_ms": rtt.as_secs_f64() * 1000.0 }),
            Err(e) => json!({ "reachable": false, "reason": if e.is_busy() { "busy" } else { "unreachable" } }),
        },
        "migrations_current": migrations,
        "parked": parked,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, axum::Json(body)).into_response();
    if !ok {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// Prometheus text format; pool gauges and the feed's lag are gathered now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.pool.publish_gauges();
    if let Some((_, lag)) = state.catalogue.feed_status() {
        state.metrics.feed.lag_seconds.set(lag);
    }
    let body = state.metrics.encode();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The pool's state as JSON (admin), with the change feed's position and lag when this replica
/// follows one (`reco monitor` shows both).
pub async fn pool_status(State(state): State<AppState>) -> Json<Value> {
    let mut body = serde_json::to_value(state.pool.status()).expect("the pool's status serialises");
    if let (Some(feed), Some(map)) = (feed(&state), body.as_object_mut()) {
        map.insert("feed".into(), feed);
    }
    Json(body)
}

/// The change feed's follower, as the admin routes show it.
fn feed(state: &AppState) -> Option<Value> {
    let (position, lag) = state.catalogue.feed_status()?;
    Some(json!({ "position": position, "lag_seconds": lag }))
}

/// Rebuilds the pool gracefully (admin, `reco reset`): new checkouts go to a new pool, busy
/// connections of the old one finish and close.
pub async fn pool_reset(State(state): State<AppState>) -> Json<Rebuilt> {
    Json(state.pool.rebuild())
}

/// This replica's view of the cluster (admin): its id, the budget, the live replicas with their
/// recorded ceilings, and the installed snapshot's version. `clustered: false` without a budget.
pub async fn cluster(State(state): State<AppState>) -> Result<Json<Value>, Error> {
    let version = state.engine.snapshot().map(|s| s.version);
    let Some(cluster) = &state.cluster else {
        return Ok(Json(json!({
            "clustered": false,
            "ceiling": state.pool.ceiling(),
            "snapshot_version": version,
        })));
    };
    let replicas = Cluster::replicas(&state.pool, &state.config.db.application_name).await?;
    Ok(Json(json!({
        "clustered": true,
        "id": cluster.id(),
        "budget": cluster.budget(),
        "ceiling": state.pool.ceiling(),
        "replicas": replicas,
        "snapshot_version": version,
        "feed": feed(&state),
    })))
}

/// Trains now (admin): answers when the new models are serving.
/// Starts a training job: 202 with the job and its `Location`, or 409 with the job already running.
pub async fn train(State(state): State<AppState>) -> Response {
    let (status, job) = match state.trainer.start_job() {
        Ok(job) => (StatusCode::ACCEPTED, job),
        Err(running) => (StatusCode::CONFLICT, running),
    };
    let location = format!("/api/admin/train/{}", job.id);
    let mut body = serde_json::to_value(&job).expect("a job serialises");
    if status == StatusCode::CONFLICT {
        body = json!({
            "error": "training_running",
            "message": format!("training job {} is running; see {location}", job.id),
            "job": body,
        });
    }
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A training job: running, succeeded (with its snapshot) or failed (with the reason).
pub async fn train_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::train::Job>, Error> {
    let job = id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.trainer.job(id))
        .ok_or_else(|| Error::not_found("training job", &id, "id"))?;
    Ok(Json(job))
}
