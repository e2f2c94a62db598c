//! Query parameters: their extractor (a malformed query is a 400 with axum's own words),
//! whole-fleet paging, and instants.

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::clock::now_ms;
use crate::query;

/// A query string of type `T`; unknown or malformed parameters are a 400.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Params<T>, ApiError> {
        Query::<T>::from_request_parts(parts, s)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A page of a whole-fleet list: `?limit=` (default [`Page::DEFAULT`], at most
/// [`Page::MAX`]) and `?offset=`. The body stays a JSON array; `X-Total-Count` says how
/// many there are in all and `Link: <…>; rel="next"` where the next page is.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// How many items (default 1000, at most 10000).
    pub limit: Option<usize>,
    /// How many to skip.
    pub offset: Option<usize>,
}

impl Page {
    const DEFAULT: usize = 1_000;
    const MAX: usize = 10_000;
}

/// One page of a list, with its paging headers.
pub(crate) struct Paged<T> {
    items: Vec<T>,
    total: usize,
    next: Option<HeaderValue>,
}

impl<T: serde::Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut r = Json(self.items).into_response();
        r.headers_mut().insert("x-total-count", HeaderValue::from(self.total));
        if let Some(link) = self.next {
            r.headers_mut().insert(header::LINK, link);
        }
        r
    }
}

/// `page` of `all`, or a 400 for a limit out of range.
pub(crate) fn paged<T>(uri: &axum::http::Uri, all: Vec<T>, page: Page) -> Result<Paged<T>, ApiError> {
    let limit = page.limit.unwrap_or(Page::DEFAULT);
    if limit == 0 || limit > Page::MAX {
        return Err(ApiError::bad_request(format!("`limit` must be 1 to {}", Page::MAX)));
    }
    let total = all.len();
    let offset = page.offset.unwrap_or(0).min(total);
    let end = offset.saturating_add(limit).min(total);
    let items: Vec<T> = all.into_iter().skip(offset).take(end - offset).collect();
    let next = (end < total).then(|| {
        // The same query, this page moved on.
        let kept: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
            .collect();
        let mut q = kept.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        HeaderValue::from_str(&format!("<{}?{q}offset={end}&limit={limit}>; rel=\"next\"", uri.path())).ok()
    });
    Ok(Paged { items, total, next: next.flatten() })
}

/// An instant to look at.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AtQuery {
    /// RFC 3339, or `now` (the default).
    at: Option<String>,
}

impl AtQuery {
    pub(crate) fn instant(&self) -> Result<i64, ApiError> {
        query::parse_instant(self.at.as_deref().unwrap_or("now"), now_ms())
            .map_err(|e| ApiError::bad_request(format!("`at` {e}")))
    }
}
