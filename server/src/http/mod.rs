//! The HTTP edge: the JSON API, SCIM provisioning and the dashboard, one router over the
//! application state. Nothing below this module imports it.

pub mod api;
pub mod scim;
pub mod sso;
pub mod ui;
