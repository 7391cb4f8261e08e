//! The status page: server-rendered HTML for people, read-only, no
//! JavaScript. `GET /status` (switches, leases, rendezvous groups,
//! refusals) and `GET /status/lease/{id}` (one lease's per-switch
//! table). Same data as `/v1/...` ([`crate::api::status::snapshot`]),
//! same tokens (admin only; see [`auth`] for the browser-friendly ways
//! to present one).

pub mod auth;
pub mod layout;
pub mod lease;
pub mod overview;

use crate::Controller;
use crate::api::status::snapshot;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use serde::Deserialize;
use std::sync::Arc;

/// The page routes (merged into the API router).
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/status", get(overview_page))
        .route("/status/", get(overview_page))
        .route("/status/lease/{id}", get(lease_page))
}

/// `?token=ADMIN_TOKEN` (other parameters are ignored).
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub token: Option<String>,
}

/// Headers every page answer carries: no caching (the token may be in
/// the address), no scripts or outside resources, no referrer.
pub fn headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

fn answer(status: StatusCode, set_cookie: Option<HeaderValue>, body: Markup) -> Response {
    let mut r = (status, headers(), body).into_response();
    if let Some(c) = set_cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

fn token(q: &Result<Query<PageQuery>, QueryRejection>) -> Option<&str> {
    q.as_ref().ok().and_then(|q| q.token.as_deref())
}

async fn overview_page(
    State(ctl): State<Arc<Controller>>,
    h: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let cfg = ctl.config();
    let who = match auth::admit(&cfg.tokens, &h, token(&q)) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let s = snapshot(&ctl).await;
    answer(StatusCode::OK, who.set_cookie, overview::render(&s, &cfg))
}

async fn lease_page(
    State(ctl): State<Arc<Controller>>,
    Path(id): Path<String>,
    h: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let cfg = ctl.config();
    let who = match auth::admit(&cfg.tokens, &h, token(&q)) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let s = snapshot(&ctl).await;
    let Some(l) = s.leases.iter().find(|l| l.lease_id == id) else {
        let text = format!(
            "No lease {id}: it expired or was released, or the id is wrong. The overview at \
             /status lists the live leases."
        );
        return answer(
            StatusCode::NOT_FOUND,
            who.set_cookie,
            layout::message("404 No such lease", &text),
        );
    };
    let g = s.subsets.iter().find(|g| g.group == l.group);
    answer(
        StatusCode::OK,
        who.set_cookie,
        lease::render(l, g, &cfg, s.now_ms),
    )
}
