//! The configuration the simulated controllers and agents run with: the
//! controller's YAML (parsed and checked by the controller's own loader) and
//! each agent's settings and in-memory switch.

use crate::fabric::Fabric;
use anyhow::{Result, anyhow};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use subcast_agent::backend::memory::{MemState, MemSwitch};
use subcast_agent::config::{MemberDef, ParentGroup};
use subcast_agent::core::AgentSettings;
use subcast_agent::core::validate::Parents;
use subcast_proto::Key;

pub const CTL_KEY: [u8; 32] = [0x5c; 32];
pub const AGENT_KEY: [u8; 32] = [0xa5; 32];
pub const CTL_KEY_ID: u32 = 1;
pub const AGENT_KEY_ID: u32 = 101;
pub const VLAN: u16 = 10;
/// Rendezvous pool of the VLAN (65,536 addresses), cut into slices per controller.
pub const POOL: &str = "ff15::5c:1:0/112";
/// The agents accept instructions for groups in this range.
pub const RANGE: &str = "ff15::5c:0:0/96";

/// A negotiating group: its parent address and members (host indices).
#[derive(Debug, Clone)]
pub struct NegGroup {
    pub parent: Ipv6Addr,
    pub members: Vec<usize>,
}

/// How the controller is set up for one policy.
#[derive(Debug, Clone)]
pub struct CtlSetup {
    pub budget: u32,
    pub warm_ms: u64,
    pub preenumerate: bool,
    pub retransmit_ms: u64,
    pub attempts: u32,
    pub lease_ms: u64,
}

pub fn parent_of(g: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 0x1, g as u16 + 1)
}

pub fn agent_addr(sw: usize) -> SocketAddr {
    SocketAddr::new(
        Ipv6Addr::new(0xfd00, 0x5c, 0xffff, 0, 0, 0, 0, sw as u16 + 1).into(),
        7412,
    )
}

pub fn ctl_addr(c: usize) -> SocketAddr {
    SocketAddr::new(
        Ipv6Addr::new(0xfd00, 0x5c, 0xfffe, 0, 0, 0, 0, c as u16 + 1).into(),
        7411,
    )
}

/// Controller `index` of `count` (its own pool slice), as YAML text.
pub fn controller_yaml(
    f: &Fabric,
    groups: &[NegGroup],
    s: &CtlSetup,
    index: usize,
    count: usize,
) -> String {
    let hex = |k: &[u8; 32]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut y = format!(
        "controller:\n  id: {}\n  udp_listen: \"[::1]:0\"\n  database: \":memory:\"\n  agent_timeout_ms: 5000\n  pool_slice: \"{index}/{count}\"\n\
keys:\n  - {{ id: {CTL_KEY_ID}, hex: \"{}\" }}\n  - {{ id: {AGENT_KEY_ID}, hex: \"{}\" }}\n\
vlans:\n  - {{ id: {VLAN}, pool: [\"{POOL}\"] }}\nswitches:\n",
        index + 1,
        hex(&CTL_KEY),
        hex(&AGENT_KEY)
    );
    for (i, sw) in f.switches.iter().enumerate() {
        y += &format!(
            "  - {{ name: {}, id: {}, vlans: [{VLAN}], budget: {}, agent: {{ address: \"{}\", key_id: {CTL_KEY_ID}, agent_key_id: {AGENT_KEY_ID} }} }}\n",
            sw.name,
            i + 1,
            s.budget,
            agent_addr(i)
        );
    }
    y += "groups:\n";
    for (g, ng) in groups.iter().enumerate() {
        y += &format!(
            "  - name: ng{g}\n    vlan: {VLAN}\n    parent: \"{}\"\n    members:\n",
            ng.parent
        );
        for m in &ng.members {
            let h = &f.hosts[*m];
            y += &format!(
                "      - {{ name: {}, ipv6: \"{}\", mac: \"{}\" }}\n",
                h.name, h.ipv6, h.mac
            );
        }
        if s.preenumerate {
            y += &format!(
                "    replicas: {}\n    preenumerate: all\n",
                ng.members.len().clamp(1, 3)
            );
        }
    }
    y += &format!(
        "budgets: {{ default: {} }}\nleases: {{ default_ms: {}, max_ms: 600000, warm_ms: {} }}\nfanout: {{ retransmit_ms: {}, attempts: {} }}\n",
        s.budget, s.lease_ms, s.warm_ms, s.retransmit_ms, s.attempts
    );
    y
}

/// The controller's own parsed and checked configuration.
pub fn controller_config(yaml: &str) -> Result<Arc<subcast_controller::Config>> {
    match subcast_controller::config::load_str(yaml, std::path::Path::new(".")) {
        Ok((c, _warnings)) => Ok(Arc::new(c)),
        Err(problems) => Err(anyhow!(
            "the simulated controller's configuration was refused (a bug in subcast-sim's setup): {problems:?}"
        )),
    }
}

/// Agent settings of switch `sw`; HELLO and HEARTBEAT go to `controller`.
pub fn agent_settings(
    f: &Fabric,
    groups: &[NegGroup],
    sw: usize,
    budget: u32,
    controller: SocketAddr,
) -> AgentSettings {
    let parents: Vec<ParentGroup> = groups
        .iter()
        .map(|ng| ParentGroup {
            address: ng.parent,
            vlan: VLAN,
            members: ng
                .members
                .iter()
                .map(|m| MemberDef {
                    name: f.hosts[*m].name.clone(),
                    ipv6: f.hosts[*m].ipv6,
                    mac: f.hosts[*m].mac,
                })
                .collect(),
        })
        .collect();
    AgentSettings {
        switch_id: sw as u32 + 1,
        rendezvous_range: RANGE.parse().expect("constant range"),
        max_lifetime_ms: 600_000,
        max_clock_skew_ms: 30_000,
        parents: Parents::new(&parents),
        controller,
        controller_sources: Vec::new(),
        heartbeat_interval: std::time::Duration::from_secs(1),
        table_capacity: Some(budget),
        sweep_interval: None,
    }
}

/// The in-memory switch of `sw`: its ports and FDB from the fabric.
pub fn mem_switch(f: &Fabric, sw: usize, budget: u32) -> MemSwitch {
    let s = &f.switches[sw];
    let mut st = MemState {
        ports: s.ports.keys().copied().collect(),
        capacity: Some(budget),
        ..MemState::default()
    };
    for (h, host) in f.hosts.iter().enumerate() {
        st.fdb.insert(host.mac, s.fdb[h]);
        st.neigh.insert(host.ipv6, host.mac);
    }
    MemSwitch::new(st)
}

pub fn ctl_key() -> Key {
    Key::new(CTL_KEY_ID, CTL_KEY)
}

pub fn agent_key() -> Key {
    Key::new(AGENT_KEY_ID, AGENT_KEY)
}
