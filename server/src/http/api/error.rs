//! The API's errors: a status and `{"error": "..."}`, and how failures behind the edge
//! become one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::{Failure, TaskFailed};

/// An API error: status plus a message for the caller.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// Every error: `{"error": "what was wrong"}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sightline\""));
        }
        r
    }
}

impl ApiError {
    pub(crate) fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, m.into())
    }

    pub(crate) fn not_found(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, m.into())
    }

    pub(crate) fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::FORBIDDEN, m.into())
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> ApiError {
        let status = match f {
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, f.message().into())
    }
}

impl From<TaskFailed> for ApiError {
    fn from(e: TaskFailed) -> ApiError {
        internal(e)
    }
}

/// A failure behind the edge: 503 when storage is unreachable, else 500; the detail is logged.
pub(crate) fn internal(e: impl std::fmt::Display + std::any::Any) -> ApiError {
    Failure::of(&e, "http").into()
}

/// Runs a store call on a blocking thread; any failure is the server's.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &std::sync::Arc<dyn crate::store::Store>,
    f: impl FnOnce(&dyn crate::store::Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    crate::state::blocking(store, f).await?.map_err(internal)
}
