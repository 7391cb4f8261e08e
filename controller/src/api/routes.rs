//! The HTTP handlers and their JSON types.

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use crate::engine::{Controller, Request, TargetSpec, now_ms};
use crate::leases::Lease;
use crate::store::AuditEntry;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Ctl = State<Arc<Controller>>;

/// An agent and whether it is alive.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub name: String,
    pub switch_id: u32,
    /// Where instructions are sent.
    pub address: String,
    pub vlans: Vec<u16>,
    pub key_id: u32,
    /// up (heard within the agent timeout), down (heard before, silent
    /// since), unknown (never heard since this controller started).
    pub state: String,
    pub last_heard_ms_ago: Option<u64>,
    pub software_version: Option<String>,
    pub backend: Option<String>,
    pub installed_groups: Option<u32>,
    pub uptime_s: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub name: String,
    pub ipv6: String,
    pub mac: String,
}

/// A negotiating (parent) group and its members.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub name: String,
    pub vlan: u16,
    pub parent: String,
    pub members: Vec<MemberView>,
}

/// A lease on a rendezvous group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    /// Decimal string (64-bit ids do not survive JavaScript numbers).
    pub lease_id: String,
    /// The rendezvous group: send the payload here.
    pub group: String,
    pub parent: String,
    pub vlan: u16,
    /// Target member names.
    pub targets: Vec<String>,
    pub switches: Vec<u32>,
    /// pending or live.
    pub state: String,
    pub created_at_ms: u64,
    /// Unix ms; stop sending before this.
    pub expires_at_ms: u64,
    pub requester: String,
}

impl From<&Lease> for LeaseView {
    fn from(l: &Lease) -> Self {
        LeaseView {
            lease_id: l.id.to_string(),
            group: l.group.to_string(),
            parent: l.parent.to_string(),
            vlan: l.vlan,
            targets: l.targets.iter().map(|t| t.name.clone()).collect(),
            switches: l.switches.clone(),
            state: l.state.name().to_owned(),
            created_at_ms: l.created_ms,
            expires_at_ms: l.expires_ms,
            requester: l.requester.clone(),
        }
    }
}

/// Ask for a rendezvous group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RendezvousBody {
    /// Parent group address (e.g. "ff15::5c:0:1") or group name.
    pub parent: String,
    /// Optional check: the VLAN the caller believes the group is in.
    pub vlan: Option<u16>,
    /// Member names, IPv6 or MAC addresses.
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
    pub clear: Vec<ClearView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only rows of this lease.
    pub lease: Option<u64>,
    /// At most this many rows (default 100, max 10000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/agents", tag = "status",
    responses((status = 200, body = Vec<AgentView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn agents(State(ctl): Ctl) -> Json<Vec<AgentView>> {
    let now = now_ms();
    let v = ctl
        .agents()
        .into_iter()
        .map(|(s, seen, up)| AgentView {
            name: s.name,
            switch_id: s.id,
            address: s.agent.to_string(),
            vlans: s.vlans,
            key_id: s.key_id,
            state: match (&seen, up) {
                (_, true) => "up",
                (Some(_), false) => "down",
                (None, _) => "unknown",
            }
            .to_owned(),
            last_heard_ms_ago: seen.as_ref().map(|a| now.saturating_sub(a.last_heard_ms)),
            software_version: seen
                .as_ref()
                .and_then(|a| a.hello.as_ref().map(|h| h.software_version.clone())),
            backend: seen
                .as_ref()
                .and_then(|a| a.hello.as_ref().map(|h| h.backend.name().to_owned())),
            installed_groups: seen
                .as_ref()
                .and_then(|a| a.heartbeat.as_ref().map(|h| h.installed_groups)),
            uptime_s: seen
                .as_ref()
                .and_then(|a| a.heartbeat.as_ref().map(|h| h.uptime_s)),
        })
        .collect();
    Json(v)
}

#[utoipa::path(get, path = "/v1/groups", tag = "status",
    responses((status = 200, body = Vec<GroupView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn groups(State(ctl): Ctl) -> Json<Vec<GroupView>> {
    Json(
        ctl.config
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                vlan: g.vlan,
                parent: g.parent.to_string(),
                members: g
                    .members
                    .iter()
                    .map(|m| MemberView {
                        name: m.name.clone(),
                        ipv6: m.ipv6.to_string(),
                        mac: m.mac.to_string(),
                    })
                    .collect(),
            })
            .collect(),
    )
}

#[utoipa::path(get, path = "/v1/leases", tag = "status",
    responses((status = 200, body = Vec<LeaseView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn leases(State(ctl): Ctl) -> Json<Vec<LeaseView>> {
    Json(ctl.leases().iter().map(LeaseView::from).collect())
}

#[utoipa::path(get, path = "/v1/audit", tag = "status", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit(
    State(ctl): Ctl,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    ctl.store
        .audit_log(q.lease, limit)
        .await
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

#[utoipa::path(post, path = "/v1/rendezvous", tag = "rendezvous", request_body = RendezvousBody,
    responses(
        (status = 201, description = "Granted: every agent in scope installed the group", body = LeaseView),
        (status = 400, description = "Bad JSON or request", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown parent group", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A target is not a member, or the lifetime is too long", body = ErrorBody),
        (status = 502, description = "An agent refused (NAK)", body = ErrorBody),
        (status = 503, description = "Pool exhausted", body = ErrorBody),
        (status = 504, description = "An agent did not answer", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rendezvous(
    State(ctl): Ctl,
    caller: Option<Extension<Caller>>,
    body: Result<Json<RendezvousBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body?;
    let req = Request {
        parent: b.parent,
        vlan: b.vlan,
        targets: b.targets.into_iter().map(TargetSpec::Text).collect(),
        lifetime_ms: b.lifetime_ms,
        requester: caller.map_or_else(|| "http".to_owned(), |c| c.name.clone()),
        path: "http",
    };
    let l = ctl.rendezvous(req).await?;
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
        (status = 200, description = "Released: CLEAR sent, address back in the pool", body = ReleaseView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such lease (expired or released)", body = ErrorBody),
        (status = 409, description = "Still being granted", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(ctl): Ctl,
    Path(lease): Path<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id: u64 = lease.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("lease id {lease:?} is not a decimal number; use the lease_id of the grant"),
        )
    })?;
    match ctl.release(id).await {
        Ok(Some(r)) => Ok(Json(ReleaseView {
            lease_id: r.lease.id.to_string(),
            group: r.lease.group.to_string(),
            released: true,
            clear: r
                .clear
                .into_iter()
                .map(|(switch_id, outcome)| ClearView { switch_id, outcome })
                .collect(),
        })),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "no lease {id}: it expired or was released already (GET /v1/leases lists live ones)"
            ),
        )),
        Err(r) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", r.detail)),
    }
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
    let agents = ctl.agents();
    Json(Health {
        status: "ok".into(),
        agents_up: agents.iter().filter(|a| a.2).count(),
        agents_configured: agents.len(),
        leases: ctl.leases().len(),
    })
}

#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(ctl): Ctl) -> impl IntoResponse {
    let up = ctl.agents().iter().filter(|a| a.2).count();
    ctl.metrics.agents_up.set(up as i64);
    ctl.metrics.leases_live.set(ctl.leases().len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctl.metrics.encode(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /openapi.json for the API",
    )
}
