//! The `/api/v1` routes and the OpenAPI document generated from the same handlers, so the
//! document cannot drift from what is served.

use super::error::ErrorBody;
use super::{actions, approvals, dashboard, inventory, reviews, tokens, triage};
use crate::http::ui;
use crate::state::AppState;

/// The routes and their document.
pub fn api_routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::{router::OpenApiRouter, routes};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(inventory::health))
        .routes(routes!(inventory::devices))
        .routes(routes!(inventory::device))
        .routes(routes!(actions::revoke_device))
        .routes(routes!(inventory::connectors))
        .routes(routes!(inventory::connector))
        .routes(routes!(actions::revoke_connector, actions::withdraw_revocation))
        .routes(routes!(actions::set_status))
        .routes(routes!(actions::set_owner))
        .routes(routes!(approvals::request))
        .routes(routes!(approvals::requests))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::deny))
        .routes(routes!(approvals::withdraw))
        .routes(routes!(approvals::audit))
        .routes(routes!(triage::triage_connector))
        .routes(routes!(triage::triage_token))
        .routes(routes!(triage::triage_device))
        .routes(routes!(triage::triage_user))
        .routes(routes!(triage::activity))
        .routes(routes!(inventory::findings))
        .routes(routes!(inventory::offboarding))
        .routes(routes!(inventory::catalog_status))
        .routes(routes!(actions::push_signins))
        .routes(routes!(triage::person))
        .routes(routes!(dashboard::view_overview))
        .routes(routes!(dashboard::view_devices))
        .routes(routes!(dashboard::view_connectors))
        .routes(routes!(dashboard::view_findings))
        .routes(routes!(dashboard::view_people))
        .routes(routes!(ui::whoami, ui::sign_in, ui::sign_out))
        .routes(routes!(tokens::list_api, tokens::create_api))
        .routes(routes!(tokens::revoke_api))
        .routes(routes!(tokens::list_enrollment, tokens::create_enrollment))
        .routes(routes!(tokens::revoke_enrollment))
        .routes(routes!(reviews::list, reviews::start))
        .routes(routes!(reviews::show))
        .routes(routes!(reviews::report))
        .routes(routes!(reviews::decide))
        .routes(routes!(reviews::mine))
        .routes(routes!(reviews::reminders))
        .routes(routes!(reviews::ack))
        .split_for_parts()
}

/// The document's frame; the paths come from the handlers' `#[utoipa::path]`, the schemas
/// from the types they name.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sightline collector API",
        description = "Inventory, triage, findings and revocation of AI connectors on a laptop fleet. \
                       Authenticate with `Authorization: Bearer <API token>` (from `sightline-server api-token create`) \
                       or a dashboard session cookie (changes through a cookie also need the `X-Sightline-CSRF` header). \
                       Roles: viewer reads; admin reads and acts; ingest pushes sign-ins; owner (a token bound to one person) \
                       reads the connectors that person owns or holds and asks for (and withdraws) their approval; \
                       ingest also reads review reminders. A reviewer's link token opens `/api/v1/review/me` and answers that reviewer's items."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "inventory", description = "Devices, connectors, findings"),
        (name = "triage", description = "Who had what, where, when"),
        (name = "actions", description = "Revocation and status decisions (admin)"),
        (name = "approvals", description = "Approval requests and the register's audit log"),
        (name = "identity", description = "People and IdP sign-ins"),
        (name = "views", description = "Server-side paged tables for the dashboard"),
        (name = "session", description = "Dashboard sign-in"),
        (name = "tokens", description = "Enrollment and API token lifecycle (admin)"),
        (name = "reviews", description = "Recertification campaigns: start, answer, report; reviewers' pages; the reminder outbox"),
        (name = "health", description = "Liveness"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API token")).build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sightline_session"))),
        );
    }
}
