//! Is a rendezvous request valid, and which group key does it name?

use super::groups::GroupKey;
use super::{Engine, Refusal, Request, TargetSpec};
use crate::leases::Target;
use std::time::Duration;
use subcast_proto::RefuseReason;

pub(super) struct Resolved {
    /// Index of the parent group in the config.
    pub gi: usize,
    pub key: GroupKey,
    /// In member order.
    pub targets: Vec<Target>,
    pub lifetime: Duration,
}

impl Engine {
    pub(super) fn resolve(&self, req: &Request) -> Result<Resolved, Refusal> {
        let cfg = &self.cfg;
        // An IPv4 parent (`239.92.0.1`) is kept IPv4-mapped, as in the config.
        let found = match req.parent.parse::<std::net::IpAddr>() {
            Ok(a) => {
                let a = subcast_proto::group_field(a);
                cfg.groups.iter().position(|g| g.parent == a)
            }
            Err(_) => cfg.groups.iter().position(|g| g.name == req.parent),
        };
        let Some(gi) = found else {
            let known: Vec<String> = cfg
                .groups
                .iter()
                .map(|g| format!("{} ({})", g.name, g.parent.to_canonical()))
                .collect();
            return Err(Refusal::new(
                RefuseReason::UnknownParent,
                format!(
                    "no negotiating group {:?}; known groups: {}",
                    req.parent,
                    known.join(", ")
                ),
            ));
        };
        let group = &cfg.groups[gi];
        if let Some(v) = req.vlan
            && v != group.vlan
        {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                format!(
                    "group {} ({}) is in VLAN {}, the request says VLAN {v}",
                    group.name, group.parent, group.vlan
                ),
            ));
        }
        if req.targets.is_empty() {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                "no targets: name at least one member of the group",
            ));
        }
        if req.targets.len() > subcast_proto::member::MAX_MEMBERS {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                format!(
                    "{} targets; at most {}",
                    req.targets.len(),
                    subcast_proto::member::MAX_MEMBERS
                ),
            ));
        }
        let mut idx: Vec<u16> = Vec::with_capacity(req.targets.len());
        for t in &req.targets {
            let (m, shown) = match t {
                TargetSpec::Text(s) => (
                    group
                        .member(s)
                        .and_then(|m| group.members.iter().position(|x| std::ptr::eq(x, m))),
                    s.clone(),
                ),
                TargetSpec::Member(m) => (
                    group
                        .member_of(m)
                        .and_then(|m| group.members.iter().position(|x| std::ptr::eq(x, m))),
                    m.to_string(),
                ),
            };
            let Some(i) = m else {
                let names: Vec<&str> = group.members.iter().map(|m| m.name.as_str()).collect();
                return Err(Refusal::new(
                    RefuseReason::NotAMember,
                    format!(
                        "{shown} is not a member of group {} ({}); its members are {}",
                        group.name,
                        group.parent,
                        names.join(", ")
                    ),
                ));
            };
            idx.push(i as u16);
        }
        idx.sort_unstable();
        idx.dedup();
        let max = cfg.lease_max.as_millis() as u64;
        let lifetime = match req.lifetime_ms {
            None | Some(0) => cfg.lease_default,
            Some(l) if l > max => {
                return Err(Refusal::new(
                    RefuseReason::LifetimeTooLong,
                    format!(
                        "lifetime {l} ms is above the maximum of {max} ms; ask for less or raise leases.max_ms"
                    ),
                ));
            }
            Some(l) => Duration::from_millis(l),
        };
        let targets = idx
            .iter()
            .map(|i| {
                let m = &group.members[usize::from(*i)];
                Target {
                    name: m.name.clone(),
                    ipv6: m.ip,
                    mac: m.mac,
                }
            })
            .collect();
        Ok(Resolved {
            gi,
            key: GroupKey {
                vlan: group.vlan,
                parent: group.parent,
                targets: idx,
            },
            targets,
            lifetime,
        })
    }

    /// The switch's name for messages: "s1 (id 1, agent ADDR)".
    pub(super) fn switch_name(&self, id: u32) -> String {
        self.cfg.switch(id).map_or_else(
            || format!("switch {id}"),
            |s| format!("{} (id {id}, agent {})", s.name, s.agent),
        )
    }
}
