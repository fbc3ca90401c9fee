//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations (paths,
//! parameters, status codes, security) and the request and response types (`utoipa::ToSchema`).
//! Built once when the router is built and served from memory at `/api/v1/openapi.json`.
//! How to document a new endpoint: docs/api.md.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{AppState, api, silences};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "homelab control plane UI API",
        version = "1",
        description = "Every error answers JSON `{\"error\": …}` (also 404 for an unknown path, 405, and 413 for a body over 2 MiB). Reads are open unless SUMMARY_TOKEN is set; then they need it, the UI token, an API token, a session or a trusted proxy user (else 401). See docs/api.md."
    ),
    servers((url = "/", description = "under BASE_PATH when set")),
    paths(
        api::healthz,
        openapi_json,
        api::summary,
        api::summary_md,
        api::metrics,
        api::world,
        api::list_actions,
        api::get_action,
        api::approve,
        api::reject,
        api::cancel,
        api::deploys,
        api::rollback,
        api::retry,
        api::ingest,
        api::alertmanager,
        silences::list,
        silences::create,
        silences::expire,
        api::audit_log,
        api::check_now,
    ),
    modifiers(&SecuritySchemes, &OptionalBodies)
)]
pub struct ApiDoc;

/// The four ways to authenticate that operations name in their `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            let mut h = Http::new(HttpAuthScheme::Bearer);
            h.description = Some(what.to_owned());
            SecurityScheme::Http(h)
        };
        components.add_security_scheme("bearer", bearer("UI_TOKEN, a user's API token (hcpt_…), or SUMMARY_TOKEN for reads"));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "hcp_session",
                "browser session from the login form; mutations also need the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme("agent", bearer("the node's ingest token (state/secrets/agent_tokens.json or AGENT_TOKENS)"));
        components.add_security_scheme("alertmanager", bearer("ALERTMANAGER_TOKEN"));
    }
}

/// Bodies a handler also accepts empty (reject and cancel: no reason). utoipa says "not required" only with
/// `Option<T>`, which would also allow a JSON `null` the handler refuses; so the body is `T` and
/// marked not required here.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for path in ["/api/v1/actions/{id}/reject", "/api/v1/actions/{id}/cancel"] {
            let op = doc.paths.paths.get_mut(path).and_then(|p| p.post.as_mut());
            if let Some(utoipa::openapi::RefOr::T(body)) = op.and_then(|op| op.request_body.as_mut()) {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// The OpenAPI document as JSON (generated anew on each call; [`DOCUMENT`] keeps one).
pub fn generate() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}

/// The document served, generated once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(generate);

/// `GET /api/v1/openapi.json`; the document is generated here, when the router is built.
pub fn routes() -> Router<Arc<AppState>> {
    LazyLock::force(&DOCUMENT);
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

/// This document (always open).
#[utoipa::path(get, path = "/api/v1/openapi.json", summary = "this document (always open)", security(()),
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}
