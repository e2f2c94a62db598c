//! Who is calling: the role behind the bearer token or dashboard session cookie, and the
//! role extractors handlers ask for instead of checking by hand. A handler that takes
//! [`Reader`] cannot run for a `scim` token; one that takes [`Admin`] runs for admins only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::error::{ApiError, blocking};
use crate::clock::now_ms;
use crate::domain::Role;
use crate::state::AppState;

pub fn token_hash(token: &str) -> Vec<u8> {
    crate::tokens::hash(token)
}

/// The caller's role, from the bearer token or else the session cookie; a refusal is
/// (status, message) so surfaces with their own error shape (SCIM) can answer in it.
pub(crate) async fn caller(shared: &AppState, headers: &HeaderMap) -> Result<Role, (StatusCode, String)> {
    caller_who(shared, headers).await.map(|(role, _)| role)
}

/// [`caller`] with who it is for audit records (`token:NAME`, `sso:ADDRESS`).
pub(crate) async fn caller_who(
    shared: &AppState,
    headers: &HeaderMap,
) -> Result<(Role, String), (StatusCode, String)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, m.to_owned());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let Some(session) = crate::http::ui::session_cookie(headers) else {
            return Err(unauthorized("an API token is required"));
        };
        let hash = token_hash(&session);
        let found = blocking(&shared.store, move |s| Ok(s.session_caller(&hash, now_ms())?))
            .await
            .map_err(|ApiError(status, m)| (status, m))?;
        return found
            .and_then(|(r, who)| Some((Role::parse(&r)?, who)))
            .ok_or_else(|| unauthorized("the session has ended; sign in again"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("expected `Authorization: Bearer <token>`"))?;
    let hash = token_hash(token);
    let found = blocking(&shared.store, move |s| Ok(s.api_token_caller(&hash, now_ms())?))
        .await
        .map_err(|ApiError(status, m)| (status, m))?;
    found
        .and_then(|(r, who)| Some((Role::parse(&r)?, who)))
        .ok_or_else(|| unauthorized("unknown, expired or revoked API token"))
}

/// The hash of the API token behind the request: the bearer's, or the one a dashboard
/// session was opened with.
pub(crate) async fn caller_token(
    shared: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Vec<u8>>, ApiError> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Ok(Some(token_hash(t.trim())));
    }
    let Some(session) = crate::http::ui::session_cookie(headers) else { return Ok(None) };
    let h = token_hash(&session);
    blocking(&shared.store, move |s| Ok(s.session_token(&h)?)).await
}

/// Any authenticated caller, with their role.
pub(crate) struct Anyone(pub Role);

impl FromRequestParts<AppState> for Anyone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Anyone, ApiError> {
        caller(s, &parts.headers).await.map(Anyone).map_err(|(status, m)| ApiError(status, m))
    }
}

/// A caller who may read the inventory: viewer or admin.
pub(crate) struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Reader, ApiError> {
        let Anyone(r) = Anyone::from_request_parts(parts, s).await?;
        if r.can_read() {
            Ok(Reader)
        } else {
            Err(ApiError::forbidden(format!("a {} token cannot read the inventory", r.as_str())))
        }
    }
}

/// An admin, and who (for audit records). (A change through a session cookie has already
/// shown its CSRF header: see `middleware::csrf`.)
pub(crate) struct Admin(String);

impl Admin {
    /// Who acted, as the register's history records it: `admin:token:NAME`, `admin:sso:ADDRESS`.
    pub(crate) fn actor(&self) -> String {
        format!("admin:{}", self.0)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Admin, ApiError> {
        match caller_who(s, &parts.headers).await.map_err(|(status, m)| ApiError(status, m))? {
            (Role::Admin, who) => Ok(Admin(who)),
            (r, _) => Err(ApiError::forbidden(format!("this needs an admin token, not {}", r.as_str()))),
        }
    }
}

/// A caller who may push IdP sign-ins: an `ingest` token, or an admin.
pub(crate) struct Pusher;

impl FromRequestParts<AppState> for Pusher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Pusher, ApiError> {
        match Anyone::from_request_parts(parts, s).await? {
            Anyone(Role::Ingest | Role::Admin) => Ok(Pusher),
            Anyone(r) => Err(ApiError::forbidden(format!("a {} token cannot push sign-ins", r.as_str()))),
        }
    }
}

/// The person an `owner` bearer token acts for, still provisioned; a 403 otherwise (a token
/// must not outlive the person's access).
async fn owner_person(s: &AppState, headers: &HeaderMap) -> Result<crate::store::Person, ApiError> {
    let hash = caller_token(s, headers)
        .await?
        .ok_or_else(|| ApiError::forbidden("an owner token is sent as a bearer token"))?;
    let person = blocking(&s.store, move |st| {
        let Some(id) = st.api_token_person(&hash)? else { return Ok(None) };
        Ok(st.person(&id)?)
    })
    .await?;
    match person {
        Some(p) if p.deprovisioned_at_ms.is_none() && p.deleted_at_ms.is_none() => Ok(p),
        Some(p) => Err(ApiError::forbidden(format!(
            "{} is deprovisioned: their owner token no longer works",
            p.user_name
        ))),
        None => Err(ApiError::forbidden("this owner token is bound to no provisioned person")),
    }
}

/// An owner token's person: they may read what they own or hold and ask for its approval.
pub(crate) struct Owner(pub Box<crate::store::Person>);

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Owner, ApiError> {
        match Anyone::from_request_parts(parts, s).await? {
            Anyone(Role::Owner) => Ok(Owner(Box::new(owner_person(s, &parts.headers).await?))),
            Anyone(r) => Err(ApiError::forbidden(format!("this needs an owner token, not {}", r.as_str()))),
        }
    }
}

/// A caller who may read the reminder outbox: an `ingest` token (the mail system's), or an
/// admin. Viewers may not: reminders carry reviewers' links.
pub(crate) struct Mailer;

impl FromRequestParts<AppState> for Mailer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Mailer, ApiError> {
        match Anyone::from_request_parts(parts, s).await? {
            Anyone(Role::Ingest | Role::Admin) => Ok(Mailer),
            Anyone(r) => {
                Err(ApiError::forbidden(format!("a {} token cannot read review reminders", r.as_str())))
            }
        }
    }
}

/// Whoever may read the register and take part in approvals: an admin (who), a viewer, or
/// an owner (their person; handlers narrow what they see and do to it).
pub(crate) enum Party {
    Admin(Admin),
    Viewer,
    Owner(Owner),
}

impl FromRequestParts<AppState> for Party {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Party, ApiError> {
        match caller_who(s, &parts.headers).await.map_err(|(status, m)| ApiError(status, m))? {
            (Role::Admin, who) => Ok(Party::Admin(Admin(who))),
            (Role::Viewer, _) => Ok(Party::Viewer),
            (Role::Owner, _) => Ok(Party::Owner(Owner(Box::new(owner_person(s, &parts.headers).await?)))),
            (r, _) => Err(ApiError::forbidden(format!("a {} token cannot read the register", r.as_str()))),
        }
    }
}

/// The bearer, if it is a live review token: the (campaign, person id) it is scoped to.
pub(crate) async fn review_grant(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, ApiError> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    let hash = token_hash(token);
    blocking(&s.store, move |st| Ok(st.review_grant(&hash, now_ms())?)).await
}

/// Paths a review token may call (the middleware lets it through to these alone; the
/// handlers' extractors then say what it may do there).
pub(crate) fn review_token_path(path: &str) -> bool {
    path == "/api/v1/review/me" || (path.starts_with("/api/v1/reviews/") && path.contains("/items/"))
}

/// Who answers a review item: an admin (on behalf), or a reviewer by their link's token.
pub(crate) struct ReviewDecider(pub crate::review::Decider);

impl FromRequestParts<AppState> for ReviewDecider {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<ReviewDecider, ApiError> {
        use crate::review::Decider;
        match caller_who(s, &parts.headers).await {
            Ok((Role::Admin, who)) => Ok(ReviewDecider(Decider::Admin(format!("admin:{who}")))),
            Ok((r, _)) => Err(ApiError::forbidden(format!("a {} token cannot answer reviews", r.as_str()))),
            Err((status, m)) => match review_grant(s, &parts.headers).await? {
                Some((campaign, person_id)) => Ok(ReviewDecider(Decider::Reviewer { campaign, person_id })),
                None => Err(ApiError(status, m)),
            },
        }
    }
}

/// A reviewer by their link's token, and nobody else: the reviewer's own page.
pub(crate) struct ReviewerToken {
    pub campaign: String,
    pub person_id: String,
}

impl FromRequestParts<AppState> for ReviewerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<ReviewerToken, ApiError> {
        if let Some((campaign, person_id)) = review_grant(s, &parts.headers).await? {
            return Ok(ReviewerToken { campaign, person_id });
        }
        match caller(s, &parts.headers).await {
            Ok(_) => {
                Err(ApiError::forbidden("this is a reviewer's page: open the link from the review e-mail"))
            }
            Err((status, m)) => Err(ApiError(status, m)),
        }
    }
}
