//! `GET /v1/...`: what the controller knows (agents, parent groups,
//! leases, rendezvous groups and where they are installed, budgets, the
//! audit log, recent refusals). Admin tokens only.

use super::errors::{ApiError, ErrorBody};
use super::views::*;
use crate::Controller;
use crate::store::{AuditEntry, AuditFilter};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;

type Ctl = State<Arc<Controller>>;

/// Everything the status page shows, read from the engine in one turn
/// (so the parts agree with each other).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now_ms: u64,
    pub agents: Vec<AgentView>,
    pub budgets: Vec<BudgetView>,
    pub subsets: Vec<SubsetView>,
    pub leases: Vec<LeaseView>,
    pub refusals: Vec<RefusalView>,
}

pub async fn snapshot(ctl: &Controller) -> Snapshot {
    let now_ms = subcast_proto::now_us() / 1000;
    let got = ctl
        .query(move |e, now| {
            let budgets = e.budgets();
            let groups = e.groups();
            let by_addr: HashMap<Ipv6Addr, &crate::engine::GroupStatus> =
                groups.iter().map(|g| (g.group, g)).collect();
            let leases: Vec<LeaseView> = e
                .leases()
                .iter()
                .map(|l| lease_view(l, by_addr.get(&l.group).copied()))
                .collect();
            Snapshot {
                now_ms,
                agents: e
                    .agents(now)
                    .into_iter()
                    .map(|a| agent_view(a, &budgets, now_ms))
                    .collect(),
                subsets: groups.iter().map(subset_view).collect(),
                budgets: budgets.into_iter().map(budget_view).collect(),
                leases,
                refusals: e.refusals().into_iter().map(refusal_view).collect(),
            }
        })
        .await;
    got.unwrap_or(Snapshot {
        now_ms,
        agents: Vec::new(),
        budgets: Vec::new(),
        subsets: Vec::new(),
        leases: Vec::new(),
        refusals: Vec::new(),
    })
}

/// A switch by name or id.
fn switch_id(ctl: &Controller, s: &str) -> Result<u32, ApiError> {
    let cfg = ctl.config();
    cfg.switches
        .iter()
        .find(|x| x.name == s || x.id.to_string() == s)
        .map(|x| x.id)
        .ok_or_else(|| {
            let names: Vec<&str> = cfg.switches.iter().map(|x| x.name.as_str()).collect();
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no switch {s:?}; the switches are {}", names.join(", ")),
            )
        })
}

#[utoipa::path(get, path = "/v1/agents", tag = "status",
    responses((status = 200, body = Vec<AgentView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn agents(State(ctl): Ctl) -> Json<Vec<AgentView>> {
    Json(snapshot(&ctl).await.agents)
}

#[utoipa::path(get, path = "/v1/groups", tag = "status",
    responses((status = 200, body = Vec<GroupView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn groups(State(ctl): Ctl) -> Json<Vec<GroupView>> {
    Json(
        ctl.config()
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                vlan: g.vlan,
                parent: g.parent.to_canonical().to_string(),
                members: g
                    .members
                    .iter()
                    .map(|m| MemberView {
                        name: m.name.clone(),
                        ipv6: m.ip.to_ipv4_mapped().is_none().then(|| m.ip.to_string()),
                        ipv4: m.ip.to_ipv4_mapped().map(|a| a.to_string()),
                        mac: m.mac.to_string(),
                    })
                    .collect(),
            })
            .collect(),
    )
}

#[utoipa::path(get, path = "/v1/leases", tag = "status",
    responses((status = 200, description = "Current leases, with the ports each switch installed for their group as ACKed", body = Vec<LeaseView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn leases(State(ctl): Ctl) -> Json<Vec<LeaseView>> {
    Json(snapshot(&ctl).await.leases)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SubsetQuery {
    /// Only groups this switch (name or id) holds or may hold.
    pub switch: Option<String>,
    /// Only this rendezvous group (address).
    pub group: Option<String>,
}

#[utoipa::path(get, path = "/v1/subsets", tag = "status", params(SubsetQuery),
    responses((status = 200, description = "Rendezvous groups held on the switches: per switch the last ACKed transaction and port count, and whether every switch agrees", body = Vec<SubsetView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn subsets(
    State(ctl): Ctl,
    Query(q): Query<SubsetQuery>,
) -> Result<Json<Vec<SubsetView>>, ApiError> {
    let sw = q
        .switch
        .as_deref()
        .map(|s| switch_id(&ctl, s))
        .transpose()?;
    let group = q
        .group
        .as_deref()
        .map(|g| {
            g.parse::<std::net::IpAddr>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    format!("group {g:?} is not an IPv4 or IPv6 address"),
                )
            })
        })
        .transpose()?;
    let all = snapshot(&ctl).await.subsets;
    Ok(Json(
        all.into_iter()
            .filter(|s| {
                group.is_none_or(|g| {
                    s.group == subcast_proto::group_field(g).to_canonical().to_string()
                })
            })
            .filter(|s| {
                sw.is_none_or(|id| {
                    s.switches
                        .iter()
                        .any(|p| p.switch_id == id && p.state != "absent")
                })
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/budgets", tag = "status",
    responses((status = 200, description = "Per switch: budget and occupancy", body = Vec<BudgetView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn budgets(State(ctl): Ctl) -> Json<Vec<BudgetView>> {
    Json(snapshot(&ctl).await.budgets)
}

#[utoipa::path(get, path = "/v1/refusals", tag = "status",
    responses((status = 200, description = "The most recent refused requests (up to 100), oldest first", body = Vec<RefusalView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn refusals(State(ctl): Ctl) -> Json<Vec<RefusalView>> {
    Json(snapshot(&ctl).await.refusals)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only rows of this lease.
    pub lease: Option<u64>,
    /// Only rows at or after this Unix time (ms).
    pub since_ms: Option<u64>,
    /// Only rows of this switch (name or id).
    pub switch: Option<String>,
    /// Only rows about this rendezvous group (address).
    pub group: Option<String>,
    /// At most this many rows, the newest (default 100, max 10000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "status", params(AuditQuery),
    responses((status = 200, description = "Every instruction to every agent and its outcome, oldest first", body = Vec<AuditEntry>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit(
    State(ctl): Ctl,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let switch_id = q
        .switch
        .as_deref()
        .map(|s| switch_id(&ctl, s))
        .transpose()?;
    let group = match q.group.as_deref() {
        None => None,
        Some(g) => Some(subcast_proto::group_field(
            g.parse::<std::net::IpAddr>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    format!("group {g:?} is not an IPv4 or IPv6 address"),
                )
            })?,
        )),
    };
    let f = AuditFilter {
        lease: q.lease,
        since_ms: q.since_ms,
        switch_id,
        group,
    };
    ctl.store
        .audit_log(f, limit)
        .await
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}
