//! The one HTTP error type and its mapping to responses.
//!
//! Which error belongs where: `db::Error`, `store::Error`, `engine::Error`, `catalogue::Error`,
//! `cluster::Error` and `train::Error` are the layers' own typed errors; handlers return [`Error`],
//! which converts from them here and only here. The client
//! sees a JSON body `{ "error": code, "message": …, "field": … }` it can act on; driver messages and
//! other internals are logged with the request's span and never sent. A busy database is 503 with
//! `Retry-After`, never 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{catalogue, cluster, db, engine, store, train};

/// Seconds a client is told to wait when the database is busy.
const RETRY_AFTER_SECONDS: u64 = 1;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule: names the field (a JSON path such as `[3].id`) when there is one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    NotFound {
        message: String,
        field: Option<String>,
    },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a valid API key is required")]
    Unauthorized,
    /// A request a browser could have been tricked into sending (cross-site, DNS rebinding).
    #[error("{0}")]
    Forbidden(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The database has no free connection (or is locked): retry shortly.
    #[error("database busy, retry later")]
    Busy,
    #[error("request took longer than the configured request_timeout")]
    Timeout,
    #[error("server is shutting down")]
    ShuttingDown,
    /// Anything else; the detail is logged, the client gets a generic message.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Error {
    /// `what` (an item, a user, …) with this id does not exist; `field` names where the id came from.
    pub fn not_found(what: &str, id: &str, field: impl Into<String>) -> Self {
        Error::NotFound {
            message: format!("{what} {id:?} not found"),
            field: Some(field.into()),
        }
    }

    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } | Error::NoRoute(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Busy | Error::Timeout | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::NotFound { .. } | Error::NoRoute(_) => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Busy => "database_busy",
            Error::Timeout => "timeout",
            Error::ShuttingDown => "shutting_down",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<crate::rules::Invalid> for Error {
    fn from(e: crate::rules::Invalid) -> Self {
        Error::invalid(e.field, e.message)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let field = match &self {
            Error::Invalid { field, .. } | Error::NotFound { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = Body {
            error: self.code(),
            message: self.to_string(),
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<db::Error> for Error {
    fn from(e: db::Error) -> Self {
        if e.is_busy() {
            tracing::warn!(error = %e, "database busy");
            return Error::Busy;
        }
        match e {
            db::Error::Closed => Error::ShuttingDown,
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Db(e) => e.into(),
            store::Error::MissingReference => Error::NotFound {
                message: "a user or item named in the request does not exist".into(),
                field: None,
            },
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<engine::Error> for Error {
    fn from(e: engine::Error) -> Self {
        match e {
            engine::Error::Load(e) => e.into(),
        }
    }
}

impl From<cluster::Error> for Error {
    fn from(e: cluster::Error) -> Self {
        match e {
            cluster::Error::Db(e) => e.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<train::Error> for Error {
    fn from(e: train::Error) -> Self {
        match e {
            train::Error::Store(e) => e.into(),
            train::Error::Cluster(e) => e.into(),
            // Another replica kept the training lock: try again later.
            train::Error::Busy => Error::Busy,
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<catalogue::Error> for Error {
    fn from(e: catalogue::Error) -> Self {
        match e {
            catalogue::Error::Store(e) => e.into(),
            catalogue::Error::Unknown { what, id, field } => Error::not_found(what, &id, field),
            catalogue::Error::ShutDown => Error::ShuttingDown,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
