//! SNMP backend: Q-BRIDGE-MIB static multicast through `subcast-snmp`.
//!
//! - Ports are Q-BRIDGE-MIB bridge port numbers (dot1dBasePort); names show the ifIndex.
//! - The view ([`SnmpView`]) answers from a cache of dot1qTpFdbTable and of parent rows
//!   filled by refreshes: a MAC the cache lacks (or a cache older than 60 s) is "unknown",
//!   so the core asks for one refresh (an FDB walk of that VLAN) and plans again; a MAC still
//!   missing after a walk younger than 2 s is absent. A member given by IPv6 address is
//!   placed only if its interface id is a modified EUI-64 (the MAC can be read from it); a
//!   switch has no neighbour table to ask otherwise.
//! - Changes are rows of dot1qStaticMulticastTable (VLAN, 33:33 MAC of the group, receive
//!   port 0): StaticEgressPorts + Status permanent(3) to write, Status invalid(2) to delete
//!   (`apply.rs`, with the rollback that makes an action all or nothing).
//! - `installed(range)`: rows only carry the group's low 32 bits (its MAC), so groups are
//!   rebuilt as `range`'s first 96 bits + those 32 bits; keep subset pools inside one /96.
//! - Others can write the same table: the core sweeps the range periodically
//!   (`guard_sweep_ms`, default 10 s) and removes rows the agent does not hold.
//! - VLAN 0 (untagged) is the driver's configured VLAN (default 1).
//! - Capacity: the MIB does not say; set `table_capacity` in the agent config.

mod apply;

use super::{Backend, BackendError, InstalledGroup, Lookup, PortId, PortSet, SwitchView};
use crate::core::action::{ActionResult, Change, Refresh};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subcast_proto::{BackendKind, Member};
use subcast_snmp::{MacAddr, SnmpConfig, SnmpError, SnmpSwitch};

/// A cached FDB older than this is read again before it answers.
pub const FDB_MAX_AGE: Duration = Duration::from_secs(60);
/// A MAC missing from an FDB read younger than this is absent (not unknown).
pub const MISS_FRESH: Duration = Duration::from_secs(2);
/// How long parent rows read by a refresh answer lookups.
pub const PARENT_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Cache {
    fdb: HashMap<(u16, MacAddr), u16>,
    fdb_read: HashMap<u16, Instant>,
    parents: HashMap<(u16, Ipv6Addr), (Option<PortSet>, Instant)>,
}

/// The core's view of an SNMP switch.
#[derive(Debug, Clone)]
pub struct SnmpView {
    cache: Arc<Mutex<Cache>>,
    default_vlan: u16,
    ports: usize,
}

fn lock(c: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

impl SnmpView {
    fn vlan(&self, vlan: u16) -> u16 {
        if vlan == 0 { self.default_vlan } else { vlan }
    }
}

/// The MAC an instruction's member stands for over SNMP.
fn member_mac(member: &Member) -> Option<MacAddr> {
    match member {
        Member::Mac(m) => Some(MacAddr(m.0)),
        Member::Ipv6(a) => mac_from_eui64(a),
        Member::Ipv4(_) => None,
    }
}

impl SwitchView for SnmpView {
    fn kind(&self) -> BackendKind {
        BackendKind::Snmp
    }

    fn port_count(&self) -> u16 {
        u16::try_from(self.ports).unwrap_or(u16::MAX)
    }

    fn table_capacity(&self) -> Option<u32> {
        None
    }

    fn port_toward(&self, vlan: u16, member: &Member) -> Lookup<PortId> {
        let Some(mac) = member_mac(member) else {
            return Lookup::Absent;
        };
        let vlan = self.vlan(vlan);
        let c = lock(&self.cache);
        let read = c.fdb_read.get(&vlan).map(Instant::elapsed);
        match (c.fdb.get(&(vlan, mac)), read) {
            (Some(p), Some(age)) if age < FDB_MAX_AGE => Lookup::Found(PortId::from(*p)),
            (None, Some(age)) if age < MISS_FRESH => Lookup::Absent,
            _ => Lookup::Unknown,
        }
    }

    fn parent_ports(&self, vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet> {
        let vlan = self.vlan(vlan);
        match lock(&self.cache).parents.get(&(vlan, parent)) {
            Some((p, at)) if at.elapsed() < PARENT_TTL => {
                p.clone().map_or(Lookup::Absent, Lookup::Found)
            }
            _ => Lookup::Unknown,
        }
    }
}

/// A switch driven over SNMP (v2c or v3).
#[derive(Debug)]
pub struct SnmpBackend {
    switch: SnmpSwitch,
    /// Bridge port number -> ifIndex, read at connect.
    ports: BTreeMap<u16, u32>,
    cache: Arc<Mutex<Cache>>,
}

impl SnmpBackend {
    /// Connects (checks reachability and credentials) and reads the port list.
    pub async fn connect(config: SnmpConfig) -> Result<Self, BackendError> {
        let switch = SnmpSwitch::connect(config).await.map_err(map_err)?;
        let ports = switch.port_ifindexes().await.map_err(map_err)?;
        tracing::info!(
            address = switch.address(),
            ports = ports.len(),
            "SNMP switch connected"
        );
        Ok(SnmpBackend {
            switch,
            ports,
            cache: Arc::default(),
        })
    }

    /// Reads the credentials file (format: `subcast_snmp::config`) and connects.
    pub async fn from_file(path: &Path) -> Result<Self, BackendError> {
        let config = SnmpConfig::from_file(path).map_err(|e| BackendError::Other(e.to_string()))?;
        Self::connect(config).await
    }

    /// The driver, for callers that need more than the trait.
    pub fn switch(&self) -> &SnmpSwitch {
        &self.switch
    }

    fn vlan(&self, vlan: u16) -> u16 {
        if vlan == 0 { self.switch.vlan() } else { vlan }
    }

    fn view_handle(&self) -> SnmpView {
        SnmpView {
            cache: self.cache.clone(),
            default_vlan: self.switch.vlan(),
            ports: self.ports.len(),
        }
    }

    pub fn port_count(&self) -> u16 {
        self.view_handle().port_count()
    }

    pub fn port_name(&self, port: PortId) -> String {
        let ifx = u16::try_from(port).ok().and_then(|p| self.ports.get(&p));
        match ifx {
            Some(i) => format!("{}:port{port}(ifIndex {i})", self.switch.address()),
            None => format!("{}:port{port}", self.switch.address()),
        }
    }

    /// Reads the FDB of `vlan` (0: the default VLAN) into the view's cache.
    pub async fn read_fdb(&mut self, vlan: u16) -> Result<(), BackendError> {
        let vlan = self.vlan(vlan);
        let entries = self.switch.fdb(vlan).await.map_err(map_err)?;
        let mut c = lock(&self.cache);
        c.fdb.retain(|(v, _), _| *v != vlan);
        for e in entries.iter().filter(|e| e.port != 0) {
            c.fdb.insert((vlan, e.mac), e.port);
        }
        c.fdb_read.insert(vlan, Instant::now());
        Ok(())
    }

    /// The port `member` is learned on, reading the FDB when the cache
    /// cannot answer.
    pub async fn port_toward(
        &mut self,
        vlan: u16,
        member: &Member,
    ) -> Result<Option<PortId>, BackendError> {
        match self.view_handle().port_toward(vlan, member) {
            Lookup::Found(p) => Ok(Some(p)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => {
                self.read_fdb(vlan).await?;
                Ok(self.view_handle().port_toward(vlan, member).found())
            }
        }
    }

    /// The egress ports of the parent group's row, read from the switch.
    pub async fn parent_ports(
        &mut self,
        vlan: u16,
        parent: Ipv6Addr,
    ) -> Result<Option<PortSet>, BackendError> {
        let vlan = self.vlan(vlan);
        let ports = self
            .switch
            .parent_ports(vlan, parent)
            .await
            .map_err(map_err)?;
        Ok(ports
            .map(|s| s.into_iter().map(PortId::from).collect::<PortSet>())
            .filter(|s| !s.is_empty()))
    }

    /// Writes the row of `group` (one change).
    pub async fn install(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
        ports: &PortSet,
    ) -> Result<(), BackendError> {
        let c = Change::Install {
            vlan,
            group,
            ports: ports.clone(),
            previous: None,
        };
        self.apply(&[c]).await.map_err(|e| e.error)
    }

    /// Deletes the row of `group` (one change; absent is not an error).
    pub async fn remove(&mut self, vlan: u16, group: Ipv6Addr) -> Result<(), BackendError> {
        let c = Change::Remove {
            vlan,
            group,
            ports: PortSet::new(),
        };
        self.apply(&[c]).await.map_err(|e| e.error)
    }
}

/// Maps a driver error to the backend error the core turns into a NAK. The message is the
/// driver's operator-facing text (it never contains a secret).
pub(crate) fn map_err(e: SnmpError) -> BackendError {
    let msg = e.to_string();
    match e {
        SnmpError::Unreachable { .. } | SnmpError::Refused { .. } => BackendError::Unreachable(msg),
        SnmpError::AgentFailed {
            status: "resourceUnavailable",
            ..
        } => BackendError::TableFull(msg),
        SnmpError::BadCommunity { .. }
        | SnmpError::AuthFailed { .. }
        | SnmpError::NotWritable { .. }
        | SnmpError::BadValue { .. }
        | SnmpError::NoSuchObject { .. } => BackendError::Refused(msg),
        _ => BackendError::Other(msg),
    }
}

/// The group of `range` a row's MAC stands for. IPv6: `range`'s first 96 bits + the
/// 33:33 MAC's 32. IPv4 (an IPv4-mapped range, `::ffff:239.92.0.0/112`): `range`'s first
/// 9 IPv4 bits + the 01:00:5e MAC's 23 (RFC 1112), so an IPv4 pool must lie inside one /9
/// for the groups to be read back; inside it, 32 groups never share a MAC.
fn group_in_range(mac: MacAddr, range: ipnet::Ipv6Net) -> Option<Ipv6Addr> {
    let base = range.network();
    let group = match base.to_ipv4_mapped() {
        Some(v4) if mac.is_ipv4_multicast() => {
            let low = u32::from_be_bytes([0, mac.0[3], mac.0[4], mac.0[5]]);
            std::net::Ipv4Addr::from((u32::from(v4) & 0xff80_0000) | low).to_ipv6_mapped()
        }
        None if mac.is_ipv6_multicast() => {
            let mut o = base.octets();
            o[12..].copy_from_slice(&mac.0[2..]);
            Ipv6Addr::from(o)
        }
        _ => return None,
    };
    range.contains(&group).then_some(group)
}

/// The MAC inside a modified EUI-64 interface id (`xx:xx:xxff:fexx:xxxx`), if it is one.
fn mac_from_eui64(a: &Ipv6Addr) -> Option<MacAddr> {
    let o = a.octets();
    if o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some(MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

pub(crate) fn port_ids(ports: &PortSet) -> Result<subcast_snmp::PortSet, BackendError> {
    ports
        .iter()
        .map(|p| {
            u16::try_from(*p)
                .ok()
                .filter(|p| (1..=subcast_snmp::mib::MAX_PORT).contains(p))
                .ok_or_else(|| {
                    BackendError::Other(format!(
                        "port {p} is not a Q-BRIDGE-MIB bridge port number"
                    ))
                })
        })
        .collect()
}

impl Backend for SnmpBackend {
    fn view(&self) -> Arc<dyn SwitchView> {
        Arc::new(self.view_handle())
    }

    fn table_vlan(&self, vlan: u16) -> u16 {
        self.vlan(vlan)
    }

    async fn apply(&mut self, changes: &[Change]) -> ActionResult {
        let default_vlan = self.switch.vlan();
        apply::apply(&self.switch, changes, default_vlan).await
    }

    async fn refresh(&mut self, r: &Refresh) -> Result<(), BackendError> {
        let vlans: std::collections::BTreeSet<u16> = r.members.iter().map(|(v, _)| *v).collect();
        for v in vlans {
            self.read_fdb(v).await?;
        }
        for (vlan, parent) in &r.parents {
            let p = self.parent_ports(*vlan, *parent).await?;
            lock(&self.cache)
                .parents
                .insert((self.vlan(*vlan), *parent), (p, Instant::now()));
        }
        Ok(())
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        let rows = self.switch.static_multicast_rows().await.map_err(map_err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.index.receive_port == 0)
            .filter_map(|r| {
                let group = group_in_range(r.index.mac, range)?;
                Some(InstalledGroup {
                    vlan: r.index.vlan,
                    group,
                    ports: r.egress.into_iter().map(PortId::from).collect(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_members_map_to_macs() {
        let a: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
        assert_eq!(mac_from_eui64(&a), Some(MacAddr([0x02, 0, 0, 0, 0, 1])));
        assert_eq!(mac_from_eui64(&"fd00::1".parse().unwrap()), None);
    }

    #[test]
    fn rows_map_back_to_groups_of_the_range_in_both_families() {
        let v6: ipnet::Ipv6Net = "ff3e::5c:0/112".parse().unwrap();
        let g6: Ipv6Addr = "ff3e::5c:7".parse().unwrap();
        assert_eq!(group_in_range(MacAddr::of_group(g6), v6), Some(g6));
        let v4: ipnet::Ipv6Net = "::ffff:239.92.128.0/120".parse().unwrap();
        let g4 = std::net::Ipv4Addr::new(239, 92, 128, 9).to_ipv6_mapped();
        let mac = MacAddr::of_group(g4);
        assert_eq!(mac.to_string(), "01:00:5e:5c:80:09");
        assert_eq!(group_in_range(mac, v4), Some(g4));
        // A row of the other family, or of a group outside the range, is not ours.
        assert_eq!(group_in_range(mac, v6), None);
        assert_eq!(group_in_range(MacAddr::of_group(g6), v4), None);
        let other = std::net::Ipv4Addr::new(239, 92, 129, 9).to_ipv6_mapped();
        assert_eq!(group_in_range(MacAddr::of_group(other), v4), None);
    }

    #[test]
    fn errors_map_to_nak_classes() {
        let e = map_err(SnmpError::Unreachable {
            hint: "",
            address: "a:1".into(),
            attempts: 3,
            timeout: std::time::Duration::from_secs(1),
        });
        assert!(matches!(e, BackendError::Unreachable(_)));
        let e = map_err(SnmpError::BadCommunity {
            address: "a:1".into(),
        });
        assert!(matches!(e, BackendError::Refused(m) if m.contains("community")));
        assert!(port_ids(&[0].into_iter().collect()).is_err());
    }
}
