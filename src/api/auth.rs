//! API-key authentication: when `http.api_key` is set, write and admin routes require it, and read
//! routes too if `http.protect_reads` is on. The key is accepted as `Authorization: Bearer <key>` or
//! `X-API-Key: <key>` and compared in constant time.
//!
//! Admin actions (`POST /api/admin/train`, `/api/admin/pool/reset`) take no body, so a web page
//! could send them cross-site as a plain form post to a server without a key (one on a developer's
//! loopback, typically). [`same_origin_admin`] refuses that: such a request must carry a JSON
//! content type or a header no form can set (`X-API-Key`, `Authorization`, `X-Requested-With`),
//! and on a loopback bind its `Host` must be a loopback name or the advertised address, which a
//! DNS-rebinding page cannot forge.

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

/// Whether `host` (a `Host` header: name or address, maybe with a port) names this machine's
/// loopback, or is `advertised` (the cluster's advertised host).
fn loopback_host(host: &str, advertised: Option<&str>) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || advertised.is_some_and(|a| a.eq_ignore_ascii_case(name))
}

/// Refuses admin actions a browser could have been tricked into sending (see the module docs).
pub async fn same_origin_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let custom = ["x-api-key", "authorization", "x-requested-with"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if !json && !custom {
        return Error::Forbidden(
            "admin actions need Content-Type: application/json or an X-Requested-With header"
                .into(),
        )
        .into_response();
    }
    if state
        .config
        .http
        .bind_addr()
        .is_some_and(|a| a.ip().is_loopback())
    {
        let advertised = state
            .config
            .cluster
            .advertise_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host, advertised.as_deref()) {
            return Error::Forbidden(format!(
                "Host {host:?} is not this server's (bound to loopback)"
            ))
            .into_response();
        }
    }
    next.run(req).await
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

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn loopback_hosts_are_names_of_this_machine() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:80",
        ] {
            assert!(loopback_host(ok, None), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.5:8080",
            "",
            "[::2]:80",
        ] {
            assert!(!loopback_host(bad, None), "{bad}");
        }
        assert!(loopback_host("reco.internal:8080", Some("reco.internal")));
    }
}
