//! Rendezvous and release, health and metrics.

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::views::{LeaseView, RefusedKeyView, ReloadView};
use crate::Controller;
use crate::daemon::ReloadError;
use crate::engine::{ReleaseError, Request, TargetSpec};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Ctl = State<Arc<Controller>>;

/// Ask for a rendezvous group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RendezvousBody {
    /// Parent group address, IPv6 or IPv4 (e.g. "ff15::5c:0:1", "239.92.0.1"), or group name.
    pub parent: String,
    /// Optional check: the VLAN the caller believes the group is in.
    pub vlan: Option<u16>,
    /// Member names, IP addresses (of the parent's family) or MAC addresses.
    pub targets: Vec<String>,
    /// Omitted or 0: the configured default.
    pub lifetime_ms: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClearView {
    pub switch_id: u32,
    /// acked, naked, silent.
    pub outcome: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    pub lease_id: String,
    pub group: String,
    pub released: bool,
    /// What became of the group: warm (kept for reuse), in-use (other
    /// leases hold it), pinned (pre-enumerated) or cleared.
    pub group_state: String,
    /// Per switch, when the group was cleared at once (leases.warm_ms 0).
    pub clear: Vec<ClearView>,
}

#[utoipa::path(post, path = "/v1/rendezvous", tag = "rendezvous", request_body = RendezvousBody,
    responses(
        (status = 201, description = "Granted: every agent in scope holds the group (`reused`: it was installed already)", body = LeaseView),
        (status = 400, description = "Bad JSON or request", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown parent group", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A target is not a member, or the lifetime is too long", body = ErrorBody),
        (status = 429, description = "The caller holds as many leases as its quota allows (quota-exceeded)", body = ErrorBody),
        (status = 502, description = "An agent refused (NAK)", body = ErrorBody),
        (status = 503, description = "Pool exhausted, or a switch has no room (table-full, names the switch)", body = ErrorBody),
        (status = 504, description = "An agent did not answer", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rendezvous(
    State(ctl): Ctl,
    caller: Option<Extension<Caller>>,
    body: Result<Json<RendezvousBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body?;
    let caller = caller.map_or_else(|| crate::engine::Caller::admin("http"), |c| c.engine());
    let req = Request {
        parent: b.parent,
        vlan: b.vlan,
        targets: b.targets.into_iter().map(TargetSpec::Text).collect(),
        lifetime_ms: b.lifetime_ms,
        requester: caller.name.clone(),
        path: "http",
    };
    // The grant runs to completion in the engine even if the client goes.
    let l = ctl.rendezvous_as(req, caller).await?;
    let location = format!("/v1/rendezvous/{}", l.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(LeaseView::from(&l)),
    ))
}

#[utoipa::path(delete, path = "/v1/rendezvous/{lease}", tag = "rendezvous",
    params(("lease" = String, Path, description = "Lease id (decimal)")),
    responses(
        (status = 200, description = "Released: the group stays warm for reuse, or (warm_ms 0) was cleared", body = ReleaseView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "The lease belongs to another credential (only its owner or an admin may release it)", body = ErrorBody),
        (status = 404, description = "No such lease (expired or released)", body = ErrorBody),
        (status = 409, description = "Still being granted", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(ctl): Ctl,
    caller: Option<Extension<Caller>>,
    Path(lease): Path<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let caller = caller.map_or_else(|| crate::engine::Caller::admin("http"), |c| c.engine());
    let id: u64 = lease.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("lease id {lease:?} is not a decimal number; use the lease_id of the grant"),
        )
    })?;
    match ctl.release_as(id, caller).await {
        Ok(r) => Ok(Json(ReleaseView {
            lease_id: r.lease.id.to_string(),
            group: r.lease.group.to_canonical().to_string(),
            released: true,
            group_state: r.group_state.to_owned(),
            clear: r
                .clear
                .into_iter()
                .map(|(switch_id, outcome)| ClearView { switch_id, outcome })
                .collect(),
        })),
        Err(ReleaseError::Unknown) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "no lease {id}: it expired or was released already (GET /v1/leases lists live ones)"
            ),
        )),
        Err(ReleaseError::NotOwner { .. }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "lease {id} belongs to another credential; only its owner or an admin may release it"
            ),
        )),
        Err(ReleaseError::Pending) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("lease {id} is still being granted; release it after the grant"),
        )),
    }
}

#[utoipa::path(post, path = "/v1/reload", tag = "status",
    responses(
        (status = 200, description = "The config file was read again and is in force", body = ReloadView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Some change cannot be made while the controller runs (listed with the reason), or there is no file to read; nothing was applied", body = ReloadView),
        (status = 422, description = "The file has errors (as check-config prints them); nothing was applied", body = ReloadView)),
    security(("bearer" = [])))]
pub async fn reload(State(ctl): Ctl) -> (StatusCode, Json<ReloadView>) {
    let file = ctl
        .config()
        .source
        .as_ref()
        .map(|p| p.display().to_string());
    let mut v = ReloadView {
        applied: false,
        file,
        changes: Vec::new(),
        refused: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
        message: String::new(),
    };
    let status = match ctl.reload().await {
        Ok(r) => {
            v.applied = true;
            v.message = format!("{} reloaded", r.file);
            v.changes = r.changes;
            v.warnings = r.warnings;
            StatusCode::OK
        }
        Err(e) => {
            v.message = e.to_string();
            match e {
                ReloadError::Invalid { problems, .. } => {
                    v.problems = problems;
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ReloadError::Refused { keys, .. } => {
                    v.refused = keys
                        .into_iter()
                        .map(|k| RefusedKeyView {
                            key: k.key,
                            reason: k.reason,
                        })
                        .collect();
                    StatusCode::CONFLICT
                }
                ReloadError::NoFile => StatusCode::CONFLICT,
                ReloadError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    };
    (status, Json(v))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub agents_up: usize,
    pub agents_configured: usize,
    pub leases: usize,
}

#[utoipa::path(get, path = "/healthz", tag = "status", responses((status = 200, body = Health)))]
pub async fn healthz(State(ctl): Ctl) -> Json<Health> {
    let agents = ctl.agents().await;
    Json(Health {
        status: "ok".into(),
        agents_up: agents.iter().filter(|a| a.up).count(),
        agents_configured: agents.len(),
        leases: ctl.query(|e, _| e.lease_count()).await.unwrap_or(0),
    })
}

#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus text format (OpenMetrics when the Accept header asks for it)", body = String, content_type = "text/plain")))]
pub async fn metrics(State(ctl): Ctl, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        let text = ctl.metrics_text().await;
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
    } else {
        let text = ctl.metrics_prometheus_text().await;
        (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /openapi.json for the API",
    )
}
