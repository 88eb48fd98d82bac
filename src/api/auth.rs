//! API-key authentication: when `http.api_key` is set, write and admin routes require it, and read
//! routes too if `http.protect_reads` is on. The key is accepted as `Authorization: Bearer <key>` or
//! `X-API-Key: <key>` and compared in constant time.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::error::Error;
use crate::app::AppState;

fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.config.http.api_key else {
        return true;
    };
    presented(headers)
        .is_some_and(|got| bool::from(got.as_bytes().ct_eq(expected.expose_secret().as_bytes())))
}

pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(&state, req.headers()) {
        next.run(req).await
    } else {
        Error::Unauthorized.into_response()
    }
}

pub async fn require_key_for_reads(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !state.config.http.protect_reads || authorized(&state, req.headers()) {
        next.run(req).await
    } else {
        Error::Unauthorized.into_response()
    }
}
