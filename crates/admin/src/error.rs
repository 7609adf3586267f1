//! Errors the backend reports to the API, each mapped to one HTTP status and code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::ErrorBody;

/// Why an admin request was refused; every variant becomes a JSON error with a 4xx/5xx status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The named group, target group or instance does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but asks for something impossible (e.g. capacity outside min..max).
    #[error("{0}")]
    OutOfRange(String),
    /// The request body or parameters could not be understood.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The request conflicts with the object's state (e.g. the instance is already terminating).
    #[error("{0}")]
    Conflict(String),
    /// A reload was refused because the config file is invalid; nothing changed.
    #[error("{summary}")]
    InvalidConfig {
        /// One sentence for a person.
        summary: String,
        /// Every problem, `FILE:LINE:COL: message`.
        errors: Vec<String>,
    },
    /// The runtime could not carry the request out.
    #[error("{0}")]
    Internal(String),
    /// Nobody can answer right now (cluster mode: no controller leads, e.g. during an
    /// election, or the store is unreachable); try again shortly.
    #[error("{0}")]
    Unavailable(String),
    /// A hot upgrade's new process failed to start or become ready; the running one serves on.
    #[error("{0}")]
    UpgradeFailed(String),
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::OutOfRange(_) => (StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AdminError::InvalidConfig { .. } => (StatusCode::BAD_REQUEST, "invalid_config"),
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            AdminError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AdminError::UpgradeFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "upgrade_failed"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let error = self.to_string();
        let errors = match self {
            AdminError::InvalidConfig { errors, .. } => errors,
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error,
            code: code.to_string(),
            errors,
        };
        (status, Json(body)).into_response()
    }
}
