//! Checks a [`RawConfig`] and builds the runtime [`Config`].
//!
//! Every check records a [`Problem`] at the value it is about and carries
//! on, so one run reports everything that is wrong.

use super::model::*;
use super::{Config, Group, GroupMember, Problem, Role, Severity, Switch, Token, Vlan};
use ipnet::Ipv6Net;
use serde_saphyr::Location;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use subcast_proto::{DEFAULT_AGENT_PORT, DEFAULT_CONTROLLER_PORT, GroupAddr, Key, MacAddr};

/// Collects problems while checking.
pub(super) struct Checker<'a> {
    pub(super) base: &'a Path,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, sev: Severity, at: Location, message: String, hint: &str) {
        self.problems.push(Problem {
            severity: sev,
            line: at.line(),
            column: at.column(),
            message,
            hint: hint.to_owned(),
        });
    }
    pub(super) fn error(&mut self, at: Location, message: String, hint: &str) {
        self.push(Severity::Error, at, message, hint);
    }
    pub(super) fn warn(&mut self, at: Location, message: String, hint: &str) {
        self.push(Severity::Warning, at, message, hint);
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    /// Reads a secret file, refusing a missing or world-readable one.
    fn secret_file(&mut self, what: &str, f: &S<String>) -> Option<String> {
        let path = self.resolve(&f.value);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                self.error(
                    f.referenced,
                    format!("{what} file {} cannot be read: {e}", path.display()),
                    "create it (e.g. `head -c32 /dev/urandom | xxd -p -c64 > FILE; chmod 600 FILE`) or fix the path (relative paths start at the config file's directory)",
                );
                return None;
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o004 != 0 {
                self.error(
                    f.referenced,
                    format!("{what} file {} is world-readable", path.display()),
                    "run `chmod 600` on it (or 640 with a group the controller runs as)",
                );
                return None;
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) => {
                self.error(
                    f.referenced,
                    format!("{what} file {} cannot be read: {e}", path.display()),
                    "check its permissions and that it is text",
                );
                None
            }
        }
    }
}

fn socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

fn parse_pool_slice(s: &str) -> Option<(u32, u32)> {
    let (i, n) = s.split_once('/')?;
    let (i, n) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (n >= 1 && i < n).then_some((i, n))
}

fn nets_overlap(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks `raw` (read from a file in `base`) and returns the config and
/// any warnings, or every problem found.
pub fn validate(raw: &RawConfig, base: &Path) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let mut c = Checker {
        base,
        problems: Vec::new(),
    };
    let top = Location::UNKNOWN;

    // controller:
    let ctl = &raw.controller;
    let controller_id = ctl.id.as_ref().map_or(1, |v| v.value);
    if let Some(v) = &ctl.id
        && v.value == 0
    {
        c.error(
            v.referenced,
            "controller id 0 is reserved".into(),
            "use 1 or more, different for each controller",
        );
    }
    let default_udp = format!("[::]:{DEFAULT_CONTROLLER_PORT}");
    let udp_listen = match &ctl.udp_listen {
        None => default_udp.parse().ok(),
        Some(v) => {
            let a = socket_addr(&v.value, DEFAULT_CONTROLLER_PORT);
            if a.is_none() {
                c.error(
                    v.referenced,
                    format!("udp_listen {:?} is not an address", v.value),
                    "write e.g. \"[::]:7411\" or \"127.0.0.1:7411\"",
                );
            }
            a
        }
    };
    let database = match &ctl.database {
        Some(v) if v.value == ":memory:" => None,
        Some(v) => Some(c.resolve(&v.value)),
        None => Some(c.resolve("subcast-controller.sqlite")),
    };
    let pool_slice = match &ctl.pool_slice {
        None => (0, 1),
        Some(v) => parse_pool_slice(&v.value).unwrap_or_else(|| {
            c.error(
                v.referenced,
                format!("pool_slice {:?} is not INDEX/COUNT", v.value),
                "write e.g. \"0/2\" on one controller and \"1/2\" on the other (INDEX < COUNT)",
            );
            (0, 1)
        }),
    };
    let agent_timeout =
        Duration::from_millis(ctl.agent_timeout_ms.as_ref().map_or(15_000, |v| v.value));
    let audit_max_rows = match &ctl.audit_max_rows {
        None => crate::store::AUDIT_MAX_ROWS_DEFAULT,
        Some(v) if v.value != 0 && v.value < crate::store::AUDIT_PRUNE_EVERY => {
            c.error(
                v.referenced,
                format!("audit_max_rows {} is too small", v.value),
                &format!(
                    "keep at least {} rows (0: no limit)",
                    crate::store::AUDIT_PRUNE_EVERY
                ),
            );
            0
        }
        Some(v) => v.value,
    };

    // keys:
    let mut keys = BTreeMap::new();
    for k in &raw.keys {
        if keys.contains_key(&k.id.value) {
            c.error(
                k.id.referenced,
                format!("key id {} is defined twice", k.id.value),
                "give each key its own id",
            );
            continue;
        }
        let text = match (&k.file, &k.hex) {
            (Some(f), None) => c.secret_file("key", f),
            (None, Some(h)) => {
                c.warn(
                    h.referenced,
                    format!("key {} is written inline in the config", k.id.value),
                    "fine for a lab; in production use `file:` with a chmod 600 key file",
                );
                Some(h.value.clone())
            }
            _ => {
                c.error(
                    k.id.referenced,
                    format!("key {} needs exactly one of `file` or `hex`", k.id.value),
                    "add `file: keys/controller.key` (64 hex digits, chmod 600)",
                );
                None
            }
        };
        if let Some(t) = text {
            match Key::from_hex(k.id.value, &t) {
                Ok(key) => {
                    keys.insert(k.id.value, key);
                }
                Err(e) => {
                    let at = k
                        .file
                        .as_ref()
                        .or(k.hex.as_ref())
                        .map_or(top, |v| v.referenced);
                    c.error(
                        at,
                        format!("key {}: {e}", k.id.value),
                        "regenerate it with `head -c32 /dev/urandom | xxd -p -c64`",
                    );
                }
            }
        }
    }

    // vlans:
    let mut vlans: BTreeMap<u16, Vlan> = BTreeMap::new();
    let mut all_pools: Vec<(Ipv6Net, u16, Location)> = Vec::new();
    if raw.vlans.is_empty() {
        c.error(
            top,
            "no VLAN is configured".into(),
            "add a `vlans:` entry with an id and a pool",
        );
    }
    for v in &raw.vlans {
        let id = v.id.value;
        if id > 4094 {
            c.error(
                v.id.referenced,
                format!("VLAN {id} is out of range"),
                "use 0 (untagged) to 4094",
            );
        }
        if vlans.contains_key(&id) {
            c.error(
                v.id.referenced,
                format!("VLAN {id} is defined twice"),
                "merge the two entries",
            );
            continue;
        }
        let mut pool = Vec::new();
        if v.pool.is_empty() {
            c.error(
                v.id.referenced,
                format!("VLAN {id} has an empty pool"),
                "add a multicast prefix such as ff15::5c:1:0/112 under `pool:`",
            );
        }
        for p in &v.pool {
            let net = match super::family::parse_pool(&p.value) {
                Ok(net) => net,
                Err((what, hint)) => {
                    c.error(p.referenced, what, hint);
                    continue;
                }
            };
            if let Some(first) = pool.first()
                && super::family::pool_family(first) != super::family::pool_family(&net)
            {
                c.error(
                    p.referenced,
                    format!("VLAN {id} mixes IPv4 and IPv6 pools"),
                    "one VLAN's pool is of one family: give the other family's groups their own VLAN",
                );
                continue;
            }
            if let Some(other) = pool
                .iter()
                .find(|o| super::family::pools_share_macs(o, &net))
            {
                c.error(
                    p.referenced,
                    format!(
                        "pool {} shares Ethernet addresses with pool {} of VLAN {id} (32 IPv4 groups share each 01:00:5e MAC)",
                        net.network().to_canonical(),
                        other.network().to_canonical()
                    ),
                    "choose pools that differ in the low 23 bits, e.g. 239.92.128.0/24 and 239.92.129.0/24",
                );
                continue;
            }
            if net.prefix_len() < 96 && net.network().to_ipv4_mapped().is_none() {
                c.warn(p.referenced, format!("pool {net} changes more than the low 32 bits"), "groups that differ only above the low 32 bits share an Ethernet address (33:33:xx:xx:xx:xx); prefer /96 or longer");
            }
            for (other, ov, _) in &all_pools {
                if nets_overlap(other, &net) {
                    c.error(
                        p.referenced,
                        format!("pool {net} overlaps pool {other} of VLAN {ov}"),
                        "pools must be disjoint; split the range between the VLANs",
                    );
                }
            }
            all_pools.push((net, id, p.referenced));
            pool.push(net);
        }
        let name = v
            .name
            .as_ref()
            .map_or_else(|| format!("vlan{id}"), |n| n.value.clone());
        vlans.insert(id, Vlan { id, name, pool });
    }

    // switches:
    let mut switches: Vec<Switch> = Vec::new();
    for s in &raw.switches {
        if switches.iter().any(|o| o.name == s.name.value) {
            c.error(
                s.name.referenced,
                format!("switch name {:?} is used twice", s.name.value),
                "names must be unique",
            );
        }
        if switches.iter().any(|o| o.id == s.id.value) {
            c.error(
                s.id.referenced,
                format!("switch id {} is used twice", s.id.value),
                "each agent reports its own switch id; make them unique",
            );
        }
        for v in &s.vlans {
            if !vlans.contains_key(&v.value) {
                c.error(
                    v.referenced,
                    format!(
                        "switch {} carries VLAN {}, which is not defined",
                        s.name.value, v.value
                    ),
                    "add it under `vlans:` or remove it here",
                );
            }
        }
        let agent = socket_addr(&s.agent.address.value, DEFAULT_AGENT_PORT);
        if agent.is_none() {
            c.error(
                s.agent.address.referenced,
                format!(
                    "agent address {:?} is not an address",
                    s.agent.address.value
                ),
                "write e.g. \"[fd00::1]:7410\"",
            );
        }
        let agent_key = s.agent.agent_key_id.as_ref().unwrap_or(&s.agent.key_id);
        for k in [&s.agent.key_id, agent_key] {
            if !raw.keys.iter().any(|x| x.id.value == k.value) {
                c.error(
                    k.referenced,
                    format!("key id {} is not defined", k.value),
                    "add it under `keys:`",
                );
            }
        }
        switches.push(Switch {
            name: s.name.value.clone(),
            id: s.id.value,
            vlans: s.vlans.iter().map(|v| v.value).collect(),
            agent: agent.unwrap_or_else(|| SocketAddr::from(([0u8; 16], 0))),
            key_id: s.agent.key_id.value,
            agent_key_id: agent_key.value,
            budget: s.budget.as_ref().map(|b| b.value),
        });
    }

    // groups:
    let mut groups: Vec<Group> = Vec::new();
    let mut member_vlan: HashMap<String, (u16, Location)> = HashMap::new();
    for g in &raw.groups {
        let vlan = g.vlan.value;
        if !vlans.contains_key(&vlan) {
            c.error(
                g.vlan.referenced,
                format!(
                    "group {} is in VLAN {vlan}, which is not defined",
                    g.name.value
                ),
                "add the VLAN under `vlans:`",
            );
        } else if !switches.iter().any(|s| s.vlans.contains(&vlan)) {
            c.warn(
                g.vlan.referenced,
                format!("no switch carries VLAN {vlan} of group {}", g.name.value),
                "rendezvous requests for it will be refused; list the VLAN under a switch",
            );
        }
        if groups.iter().any(|o| o.name == g.name.value) {
            c.error(
                g.name.referenced,
                format!("group name {:?} is used twice", g.name.value),
                "names must be unique",
            );
        }
        let parent = match super::family::parse_parent(&g.parent.value, &g.name.value) {
            Ok(a) => Some(a),
            Err((what, hint)) => {
                c.error(g.parent.referenced, what, hint);
                None
            }
        };
        let family = parent.map(|p| subcast_proto::GroupAddr::family(&p));
        if let (Some(p), Some(pool)) = (parent, vlans.get(&vlan).map(|v| &v.pool)) {
            if let Some(first) = pool.first()
                && super::family::pool_family(first) != p.family()
            {
                c.error(
                    g.parent.referenced,
                    format!(
                        "parent {} of group {} is {}, VLAN {vlan}'s pool is {}",
                        p.to_canonical(),
                        g.name.value,
                        p.family(),
                        super::family::pool_family(first)
                    ),
                    "a rendezvous group has its parent's family: put the group in a VLAN whose pool is of that family",
                );
            }
            if let Some(net) = pool.iter().find(|n| super::family::parent_shares_mac(p, n)) {
                c.error(
                    g.parent.referenced,
                    format!(
                        "parent {} shares its Ethernet address with an address of pool {}/{} in VLAN {vlan}",
                        p.to_canonical(),
                        net.network().to_canonical(),
                        net.prefix_len() - 96
                    ),
                    "choose a parent whose low 23 bits lie outside every IPv4 pool of the VLAN",
                );
            }
        }
        if let Some(p) = parent {
            if groups.iter().any(|o| o.parent == p) {
                c.error(
                    g.parent.referenced,
                    format!("parent {} is used by two groups", p.to_canonical()),
                    "each negotiating group needs its own address",
                );
            }
            if let Some((net, v, _)) = all_pools.iter().find(|(n, _, _)| n.contains(&p)) {
                c.error(
                    g.parent.referenced,
                    format!(
                        "parent {} lies inside the rendezvous pool {net} of VLAN {v}",
                        p.to_canonical()
                    ),
                    "move the parent group or the pool so they do not overlap",
                );
            }
        }
        if g.members.is_empty() {
            c.error(
                g.name.referenced,
                format!("group {} has no members", g.name.value),
                "list its storage nodes under `members:`",
            );
        }
        let mut members: Vec<GroupMember> = Vec::new();
        for m in &g.members {
            let ipv6 = super::family::member_ip(&mut c, m, &g.name.value, family);
            let mac = match m.mac.value.parse::<MacAddr>() {
                Ok(mac) if mac.0[0] & 1 == 0 => Some(mac),
                Ok(_) => {
                    c.error(
                        m.mac.referenced,
                        format!(
                            "member {} has a multicast MAC {}",
                            m.name.value, m.mac.value
                        ),
                        "use the member's unicast MAC (first octet even)",
                    );
                    None
                }
                Err(e) => {
                    c.error(
                        m.mac.referenced,
                        e.to_string(),
                        "write six hex octets like 02:00:00:00:01:01",
                    );
                    None
                }
            };
            if members
                .iter()
                .any(|o| o.name == m.name.value || Some(o.ip) == ipv6 || Some(o.mac) == mac)
            {
                c.error(
                    m.name.referenced,
                    format!(
                        "member {} appears twice in group {}",
                        m.name.value, g.name.value
                    ),
                    "each member once per group (same name, IP or MAC)",
                );
            }
            let mut clash: Option<(u16, u64, Vec<String>)> = None;
            for key in [
                Some(m.name.value.clone()),
                ipv6.map(|a| a.to_canonical().to_string()),
                mac.map(|a| a.to_string()),
            ]
            .into_iter()
            .flatten()
            {
                match member_vlan.get(&key) {
                    Some((v, at)) if *v != vlan => {
                        clash
                            .get_or_insert_with(|| (*v, at.line(), Vec::new()))
                            .2
                            .push(key);
                    }
                    Some(_) => {}
                    None => {
                        member_vlan.insert(key, (vlan, m.name.referenced));
                    }
                }
            }
            if let Some((v, line, keys)) = clash {
                c.error(
                    m.name.referenced,
                    format!(
                        "member {} ({}) is in VLAN {vlan} here and in VLAN {v} at line {line}",
                        m.name.value,
                        keys.join(", ")
                    ),
                    "a storage node belongs to one VLAN; fix its VLAN or its name/addresses",
                );
            }
            if let (Some(ipv6), Some(mac)) = (ipv6, mac) {
                members.push(GroupMember {
                    name: m.name.value.clone(),
                    ip: ipv6,
                    mac,
                });
            }
        }
        if let Some(parent) = parent {
            let (replicas, preenumerate) =
                super::validate_rates::preenumerate(&mut c, g, members.len());
            groups.push(Group {
                name: g.name.value.clone(),
                vlan,
                parent,
                members,
                replicas,
                preenumerate,
            });
        }
    }

    // leases:
    let lease_default = raw.leases.default_ms.as_ref().map_or(2000, |v| v.value);
    let lease_max = raw.leases.max_ms.as_ref().map_or(60_000, |v| v.value);
    if let Some(v) = &raw.leases.default_ms
        && v.value == 0
    {
        c.error(
            v.referenced,
            "default_ms is 0".into(),
            "leases must last at least 1 ms; 2000 is typical",
        );
    }
    if lease_default > lease_max {
        let at = raw.leases.default_ms.as_ref().map_or(top, |v| v.referenced);
        c.error(
            at,
            format!("default_ms {lease_default} is above max_ms {lease_max}"),
            "lower default_ms or raise max_ms",
        );
    }
    if lease_max > u64::from(u32::MAX) {
        let at = raw.leases.max_ms.as_ref().map_or(top, |v| v.referenced);
        c.error(
            at,
            format!("max_ms {lease_max} does not fit the wire format"),
            "use at most 4294967295 (about 49 days)",
        );
    }

    // fanout:
    let retransmit = raw.fanout.retransmit_ms.as_ref().map_or(20, |v| v.value);
    let attempts = raw.fanout.attempts.as_ref().map_or(5, |v| v.value);
    if let Some(v) = &raw.fanout.retransmit_ms
        && v.value == 0
    {
        c.error(
            v.referenced,
            "retransmit_ms is 0".into(),
            "use 10 to 100 on a LAN",
        );
    }
    if let Some(v) = &raw.fanout.attempts
        && !(1..=20).contains(&v.value)
    {
        c.error(
            v.referenced,
            format!("attempts {} is out of range", v.value),
            "use 1 to 20 (5 is typical)",
        );
    }

    // api:
    let api_listen = match &raw.api.listen {
        None => "[::1]:8411".parse().ok(),
        Some(v) => {
            let a = socket_addr(&v.value, 8411);
            if a.is_none() {
                c.error(
                    v.referenced,
                    format!("api listen {:?} is not an address", v.value),
                    "write e.g. \"[::1]:8411\"",
                );
            }
            a
        }
    };
    let mut tokens: Vec<Token> = Vec::new();
    for t in &raw.api.tokens {
        let role = match t.role.value.as_str() {
            "admin" => Some(Role::Admin),
            "storage-node" => Some(Role::StorageNode),
            other => {
                c.error(
                    t.role.referenced,
                    format!("unknown role {other:?}"),
                    "roles are \"admin\" and \"storage-node\"",
                );
                None
            }
        };
        let secret = match (&t.file, &t.token) {
            (Some(f), None) => c.secret_file("token", f),
            (None, Some(s)) => {
                c.warn(
                    s.referenced,
                    "API token written inline in the config".into(),
                    "fine for a lab; in production use `file:` with a chmod 600 token file",
                );
                Some(s.value.clone())
            }
            _ => {
                c.error(
                    t.role.referenced,
                    "a token needs exactly one of `file` or `token`".into(),
                    "add `file: tokens/admin.token` (chmod 600)",
                );
                None
            }
        };
        if let Some(s) = &secret
            && s.len() < 16
        {
            let at = t
                .file
                .as_ref()
                .or(t.token.as_ref())
                .map_or(top, |v| v.referenced);
            c.error(
                at,
                format!("token is {} characters long", s.len()),
                "use at least 16 random characters, e.g. `head -c24 /dev/urandom | base64`",
            );
        }
        if let (Some(role), Some(secret)) = (role, secret) {
            if tokens.iter().any(|o| o.secret == secret) {
                c.error(
                    t.role.referenced,
                    "the same token is listed twice".into(),
                    "give each client its own token",
                );
            }
            let name = t
                .name
                .as_ref()
                .map_or_else(|| role.name().to_owned(), |n| n.value.clone());
            tokens.push(Token {
                name,
                role,
                secret,
                max_leases: t.max_leases.as_ref().map(|v| v.value),
            });
        }
    }
    let max_body_bytes = raw
        .api
        .max_body_bytes
        .as_ref()
        .map_or(64 * 1024, |v| v.value) as usize;

    // rendezvous:
    let mut rendezvous_key_ids = Vec::new();
    for k in &raw.rendezvous.key_ids {
        if !raw.keys.iter().any(|x| x.id.value == k.value) {
            c.error(
                k.referenced,
                format!("rendezvous key id {} is not defined", k.value),
                "add it under `keys:`",
            );
        }
        if switches
            .iter()
            .any(|s| s.key_id == k.value || s.agent_key_id == k.value)
        {
            c.warn(k.referenced, format!("key {} is shared by agents and storage nodes", k.value), "a storage node holding an agent key could forge ACKs; give storage nodes their own key");
        }
        rendezvous_key_ids.push(k.value);
    }

    let rates = super::validate_rates::rates(&mut c, raw, lease_max);

    let errors = c.problems.iter().any(|p| p.severity == Severity::Error);
    if errors {
        return Err(c.problems);
    }
    let (Some(udp_listen), Some(api_listen)) = (udp_listen, api_listen) else {
        return Err(c.problems);
    };
    Ok((
        Config {
            controller_id,
            udp_listen,
            database,
            pool_slice,
            agent_timeout,
            audit_max_rows,
            keys,
            vlans,
            switches,
            groups,
            lease_default: Duration::from_millis(lease_default),
            lease_max: Duration::from_millis(lease_max),
            warm: rates.warm,
            hold: rates.hold,
            max_leases_per_credential: rates.max_per_credential,
            default_budget: rates.default_budget,
            miss_reserve_percent: rates.miss_reserve_percent,
            max_leases_per_sender: raw
                .rendezvous
                .max_leases_per_sender
                .as_ref()
                .map(|v| v.value),
            retransmit: Duration::from_millis(retransmit),
            attempts,
            api_listen,
            tokens,
            max_body_bytes,
            rendezvous_key_ids,
            source: None,
        },
        c.problems,
    ))
}
