//! The HTTP API: `/v1/...` behind bearer tokens, `/healthz`, `/metrics`,
//! `/openapi.json`. Errors are JSON ([`errors::ErrorBody`]). The HTML
//! status page for people is under `/status` ([`page`]).

pub mod auth;
pub mod errors;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod status;
pub mod views;

use crate::Controller;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use routes::*;
use status::*;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The OpenAPI document (also served at `/openapi.json`).
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    build(None).1
}

fn build(ctl: Option<Arc<Controller>>) -> (Router<Arc<Controller>>, utoipa::openapi::OpenApi) {
    let mut v1 = OpenApiRouter::<Arc<Controller>>::new()
        .routes(routes!(agents))
        .routes(routes!(groups))
        .routes(routes!(leases))
        .routes(routes!(audit))
        .routes(routes!(subsets))
        .routes(routes!(budgets))
        .routes(routes!(refusals))
        .routes(routes!(reload))
        .routes(routes!(rendezvous))
        .routes(routes!(release));
    if let Some(ctl) = ctl {
        v1 = v1.layer(axum::middleware::from_fn_with_state(
            ctl,
            auth::require_token,
        ));
    }
    let open = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(v1)
        .merge(open)
        .split_for_parts()
}

/// The whole HTTP service for `ctl`.
pub fn router(ctl: Arc<Controller>) -> Router {
    let (r, doc) = build(Some(ctl.clone()));
    let doc = Arc::new(doc);
    r.route(
        "/openapi.json",
        get(move || async move { axum::Json(doc.as_ref().clone()) }),
    )
    .merge(page::routes())
    .fallback(not_found)
    .layer(DefaultBodyLimit::max(ctl.config().max_body_bytes))
    .with_state(ctl)
}

/// Serves the API on `listener` until the process stops.
pub async fn serve(ctl: Arc<Controller>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(ctl)).await
}
