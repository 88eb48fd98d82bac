//! HTTP: routes, request validation, authentication, error mapping, metrics middleware and the
//! OpenAPI document.
//!
//! [`router`] builds the whole service from an [`AppState`] without binding a socket, so tests can
//! drive it in-process or serve it on port 0; [`serve`] runs it on a listener until shutdown.
//! Handlers return [`error::Error`], the one type that maps to HTTP responses; they read through
//! the store and the engine, and write only through the catalogue.

mod auth;
mod dashboard;
pub mod error;
pub mod extract;
mod feedback;
mod items;
mod openapi;
mod ops;
mod recommend;
mod users;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::seconds;
use crate::metrics::HttpLabels;
pub use error::Error;
use extract::BodyLimit;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long connections get to deliver their 503 once the shutdown deadline passed.
const DROP_AFTER_STOP: std::time::Duration = std::time::Duration::from_secs(2);

/// The complete HTTP service.
pub fn router(state: AppState) -> Router {
    let reads = Router::new()
        .route("/api/items", get(items::list))
        .route("/api/items/{id}", get(items::get))
        .route("/api/items/{id}/feedback", get(feedback::list_by_item))
        .route("/api/items/{id}/similar", get(recommend::similar))
        .route("/api/recommend/session", post(recommend::session))
        .route("/api/users", get(users::list))
        .route("/api/users/{id}", get(users::get))
        .route("/api/users/{id}/feedback", get(feedback::list_by_user))
        .route("/api/recommend/{user_id}", get(recommend::recommend))
        .route("/api/popular", get(recommend::popular))
        .route("/api/latest", get(recommend::latest))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key_for_reads,
        ));
    let writes = Router::new()
        .route("/api/items", post(items::upsert))
        .route("/api/items/batch", post(items::upsert_batch))
        .route("/api/items/{id}", delete(items::remove).patch(items::patch))
        .route("/api/users", post(users::upsert))
        .route("/api/users/batch", post(users::upsert_batch))
        .route("/api/users/{id}", delete(users::remove).patch(users::patch))
        .route("/api/feedback", post(feedback::insert))
        .route(
            "/api/feedback/{user_id}/{item_id}",
            delete(feedback::remove),
        )
        .route("/api/admin/pool", get(ops::pool_status))
        .merge(
            Router::new()
                .route("/api/admin/pool/reset", post(ops::pool_reset))
                .route("/api/admin/train", post(ops::train))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    auth::same_origin_admin,
                )),
        )
        .route("/api/admin/train/{id}", get(ops::train_job))
        .route("/api/admin/cluster", get(ops::cluster))
        .route("/api/admin/dashboard", get(dashboard::data))
        .route(
            "/api/admin/users/{id}/overview",
            get(dashboard::user_overview),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    let open = Router::new()
        .route("/dashboard", get(dashboard::page))
        .route("/health/live", get(ops::live))
        .route("/health/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document));

    let body_limit = state.config.http.max_body_bytes;
    Router::new()
        .merge(reads)
        .merge(writes)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        .layer(CatchPanicLayer::custom(|_| Error::Internal("handler panicked".into()).into_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Serves HTTP on `listener` until `shutdown` completes, then shuts the application down gracefully
/// (in-flight requests finish, queued feedback commits, the pool closes).
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The configuration requires `cluster.advertise_url` for a bind on every interface, so the
    // listener's own address is one others can reach.
    if let (Some(cluster), Ok(addr)) = (&state.cluster, listener.local_addr()) {
        cluster.advertise_default(format!("http://{addr}"));
    }
    // On the signal, in-flight requests get `http.shutdown_timeout`; then those still running are
    // answered 503 (the request middleware watches `stopping`), and a connection that still does
    // not finish is dropped a moment later.
    let grace = seconds(state.config.http.shutdown_timeout);
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    // Responses go out as they are written: with Nagle's algorithm on, the tail of a response
    // can wait for the client's delayed acknowledgement of the previous segment (up to 40 ms on
    // Linux), as every production HTTP server knows.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set on a connection");
        }
    });
    let server = axum::serve(
        listener,
        router(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled.send(true);
    });
    let deadline = {
        let state = state.clone();
        async move {
            if on_signal.wait_for(|s| *s).await.is_err() {
                return std::future::pending().await;
            }
            tokio::time::sleep(grace).await;
            tracing::warn!(
                seconds = grace.as_secs_f64(),
                "http.shutdown_timeout passed: answering the requests still running 503"
            );
            let _ = state.stopping.send(true);
            tokio::time::sleep(DROP_AFTER_STOP).await;
        }
    };
    tokio::select! {
        served = server.into_future() => served.context("HTTP server")?,
        _ = deadline => tracing::warn!("dropping connections that did not finish"),
    }
    tracing::info!("HTTP server stopped; committing queued feedback");
    state.shutdown().await;
    Ok(())
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Error {
    Error::NoRoute(format!("{method} {}", uri.path()))
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// Answers 503 when a request runs past `http.request_timeout`, or is still running when the
/// shutdown deadline passes.
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = seconds(state.config.http.request_timeout);
    let mut stopping = state.stopping.subscribe();
    tokio::select! {
        answer = tokio::time::timeout(limit, next.run(req)) => match answer {
            Ok(response) => response,
            Err(_) => Error::Timeout.into_response(),
        },
        _ = stopping.wait_for(|stop| *stop) => Error::ShuttingDown.into_response(),
    }
}

/// The metric label of a method: one of a fixed set, so that a client sending made-up methods
/// cannot create new time series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// Counts requests and records latency by route template and status.
async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state
        .metrics
        .http_latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
