//! SNMP backend: Q-BRIDGE-MIB static multicast through `subcast-snmp`.
//!
//! - Ports are Q-BRIDGE-MIB bridge port numbers (dot1dBasePort); names show the ifIndex.
//! - `port_toward`: dot1qTpFdbTable (cached in the driver, re-read on a miss). A member given
//!   by IPv6 address is placed only if its interface id is a modified EUI-64 (the MAC can be
//!   read from it); a switch has no neighbour table to ask otherwise.
//! - `install`/`remove`: the row (VLAN, 33:33 MAC of the group, receive port 0) of
//!   dot1qStaticMulticastTable, StaticEgressPorts + Status permanent(3) in one SET; delete
//!   with Status invalid(2).
//! - `installed(range)`: rows only carry the group's low 32 bits (its MAC), so groups are
//!   rebuilt as `range`'s first 96 bits + those 32 bits; keep subset pools inside one /96.
//! - VLAN 0 (untagged) is the driver's configured VLAN (default 1).

use super::{Backend, BackendError, InstalledGroup, PortId, PortSet};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;
use subcast_proto::{BackendKind, Member};
use subcast_snmp::{MacAddr, SnmpConfig, SnmpError, SnmpSwitch};

/// A switch driven over SNMP (v2c or v3).
#[derive(Debug)]
pub struct SnmpBackend {
    switch: SnmpSwitch,
    /// Bridge port number -> ifIndex, read at connect.
    ports: BTreeMap<u16, u32>,
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
        Ok(SnmpBackend { switch, ports })
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
}

/// Maps a driver error to the backend error the core turns into a NAK. The message is the
/// driver's operator-facing text (it never contains a secret).
fn map_err(e: SnmpError) -> BackendError {
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

/// The MAC inside a modified EUI-64 interface id (`xx:xx:xxff:fexx:xxxx`), if it is one.
fn mac_from_eui64(a: &Ipv6Addr) -> Option<MacAddr> {
    let o = a.octets();
    if o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some(MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

fn port_ids(ports: &PortSet) -> Result<subcast_snmp::PortSet, BackendError> {
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
    fn kind(&self) -> BackendKind {
        BackendKind::Snmp
    }

    fn port_count(&self) -> u16 {
        u16::try_from(self.ports.len()).unwrap_or(u16::MAX)
    }

    fn port_name(&self, port: PortId) -> String {
        let ifx = u16::try_from(port).ok().and_then(|p| self.ports.get(&p));
        match ifx {
            Some(i) => format!("{}:port{port}(ifIndex {i})", self.switch.address()),
            None => format!("{}:port{port}", self.switch.address()),
        }
    }

    async fn port_toward(
        &mut self,
        vlan: u16,
        member: &Member,
    ) -> Result<Option<PortId>, BackendError> {
        let mac = match member {
            Member::Mac(m) => MacAddr(m.0),
            Member::Ipv6(a) => match mac_from_eui64(a) {
                Some(m) => m,
                None => {
                    tracing::warn!(%a, "cannot place an IPv6 member without an EUI-64 interface id over SNMP; give its MAC");
                    return Ok(None);
                }
            },
        };
        let vlan = self.vlan(vlan);
        let port = self.switch.port_of(vlan, mac).await.map_err(map_err)?;
        Ok(port.filter(|p| *p != 0).map(PortId::from))
    }

    async fn parent_ports(
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

    async fn install(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
        ports: &PortSet,
    ) -> Result<(), BackendError> {
        let vlan = self.vlan(vlan);
        let ports = port_ids(ports)?;
        self.switch
            .install_mac(vlan, MacAddr::ipv6_multicast(group), &ports)
            .await
            .map_err(map_err)
    }

    async fn remove(&mut self, vlan: u16, group: Ipv6Addr) -> Result<(), BackendError> {
        let vlan = self.vlan(vlan);
        self.switch
            .remove_mac(vlan, MacAddr::ipv6_multicast(group))
            .await
            .map_err(map_err)
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        let rows = self.switch.static_multicast_rows().await.map_err(map_err)?;
        let base = range.network().octets();
        Ok(rows
            .into_iter()
            .filter(|r| r.index.mac.is_ipv6_multicast() && r.index.receive_port == 0)
            .filter_map(|r| {
                let mut o = base;
                o[12..].copy_from_slice(&r.index.mac.0[2..]);
                let group = Ipv6Addr::from(o);
                range.contains(&group).then(|| InstalledGroup {
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

/// The backend against real snmpd + the pass_persist handler on a Linux bridge (root).
#[cfg(test)]
mod real_snmpd {
    use super::*;
    use std::time::Duration;
    use subcast_snmp::testlab::{COMMUNITY_RW, Lab, V3_AUTH, V3_PRIV, V3_USER, passpersist_binary};

    async fn backend(cfg: SnmpConfig) -> SnmpBackend {
        for _ in 0..50 {
            if let Ok(b) = SnmpBackend::connect(cfg.clone()).await {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        SnmpBackend::connect(cfg)
            .await
            .expect("connect to the lab snmpd")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backend_programs_a_real_bridge_through_snmpd() {
        let handler = passpersist_binary();
        let mut lab = Lab::new(4);
        lab.start_snmpd(&handler);
        let mut v3 = backend(SnmpConfig::v3_sha_aes(
            lab.address(),
            V3_USER,
            V3_AUTH,
            V3_PRIV,
        ))
        .await;
        let mut v2 = backend(SnmpConfig::v2c(lab.address(), COMMUNITY_RW)).await;
        assert_eq!(v3.kind(), BackendKind::Snmp);
        assert_eq!(v3.port_count(), 4);

        let hosts = lab.hosts.clone();
        let mut ports = Vec::new();
        for h in &hosts {
            let mac: subcast_proto::MacAddr = h.mac.parse().expect("lab MAC");
            let mut port = None;
            for _ in 0..25 {
                v3.switch().invalidate_fdb_cache();
                port = v3
                    .port_toward(0, &Member::Mac(mac))
                    .await
                    .expect("port_toward");
                if port.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(
                port,
                Some(PortId::from(lab.port_no(h))),
                "port of {}",
                h.mac
            );
            ports.push(port.expect("checked"));
        }
        assert!(v3.port_name(ports[0]).contains("ifIndex"));

        let (receivers, sender) = hosts.split_at(3);
        let sender = &sender[0];
        let files: Vec<_> = receivers.iter().map(|h| lab.capture(h)).collect();
        lab.wait_querier(sender, &files);
        let count =
            |port: u16| -> Vec<usize> { files.iter().map(|f| lab.count(f, port)).collect() };

        let parent: Ipv6Addr = "ff3e::1:100".parse().expect("addr");
        let x: Ipv6Addr = "ff3e::1:101".parse().expect("addr");
        let parent_set: PortSet = ports[..3].iter().copied().collect();
        v2.install(0, parent, &parent_set)
            .await
            .expect("install parent");
        assert_eq!(
            v3.parent_ports(0, parent).await.expect("parent"),
            Some(parent_set)
        );
        assert_eq!(v3.parent_ports(0, x).await.expect("absent"), None);

        let subset: PortSet = [ports[0], ports[2]].into_iter().collect();
        v3.install(0, x, &subset).await.expect("install X");
        lab.send(sender, &x.to_string(), 6001, 4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            count(6001),
            vec![4, 0, 4],
            "X must reach exactly hosts 1 and 3"
        );

        let range: ipnet::Ipv6Net = "ff3e::1:100/120".parse().expect("net");
        let mut got = v3.installed(range).await.expect("installed");
        got.sort_by_key(|g| g.group);
        assert_eq!(
            got,
            vec![
                InstalledGroup {
                    vlan: 1,
                    group: parent,
                    ports: ports[..3].iter().copied().collect()
                },
                InstalledGroup {
                    vlan: 1,
                    group: x,
                    ports: subset
                },
            ]
        );

        v3.remove(0, x).await.expect("remove");
        v3.remove(0, x).await.expect("remove absent");
        lab.send(sender, &x.to_string(), 6002, 4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count(6002), vec![0, 0, 0]);
        v2.remove(0, parent).await.expect("remove parent");
        assert!(v3.installed(range).await.expect("installed").is_empty());

        lab.signal_snmpd("STOP");
        let e = v3
            .install(0, x, &[ports[0]].into_iter().collect())
            .await
            .unwrap_err();
        assert!(matches!(e, BackendError::Unreachable(_)), "{e}");
        lab.kill_snmpd();
        assert!(lab.static_mdb().iter().all(|(g, _)| !g.starts_with("ff3e")));
    }
}
