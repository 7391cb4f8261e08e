//! [`SnmpSwitch`]: the Q-BRIDGE-MIB operations subcast needs from one switch.

use crate::config::SnmpConfig;
use crate::error::SnmpError;
use crate::mib::{
    self, DOT1D_BASE_PORT_IFINDEX, DOT1Q_TP_FDB_ENTRY, MacAddr, MacSubIds, PortSet,
    StaticMcastIndex, decode_port_list, encode_port_list, format_oid, status,
};
use crate::session::{Req, Transport, Val, Varbinds};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// One learned unicast address (dot1qTpFdbEntry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// dot1qFdbId (equal to the VLAN on the usual independent-learning switches).
    pub fdb_id: u16,
    /// The station's MAC.
    pub mac: MacAddr,
    /// Bridge port number (dot1dBasePort); 0 means "unknown" in the MIB.
    pub port: u16,
    /// dot1qTpFdbStatus (3 learned, 4 self, 5 mgmt...), if the switch served it.
    pub status: Option<i64>,
}

/// One dot1qStaticMulticastEntry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMulticastRow {
    /// VLAN, MAC, receive port.
    pub index: StaticMcastIndex,
    /// StaticEgressPorts.
    pub egress: PortSet,
    /// dot1qStaticMulticastStatus, if the switch served it.
    pub status: Option<i64>,
}

/// How long learned FDB entries are trusted before a lookup reads the table again.
const FDB_CACHE_MAX_AGE: Duration = Duration::from_secs(60);
/// Rows per GETBULK.
const BULK_REPETITIONS: u32 = 24;
/// Upper bound on objects read by one walk (a misbehaving agent cannot make us loop forever).
const MAX_WALK: usize = 200_000;

#[derive(Debug, Default)]
struct FdbCache {
    /// When each fdbId was last read.
    read_at: HashMap<u16, Instant>,
    ports: HashMap<(u16, MacAddr), u16>,
}

/// A switch managed through Q-BRIDGE-MIB. All methods take `&self`; requests to one switch
/// are serialized.
#[derive(Debug)]
pub struct SnmpSwitch {
    transport: tokio::sync::Mutex<Transport>,
    fdb: std::sync::Mutex<FdbCache>,
    port_list_len: std::sync::atomic::AtomicUsize,
    pub(crate) address: String,
    vlan: u16,
}

impl SnmpSwitch {
    /// Connects and checks that the switch answers and accepts the credentials (reads
    /// sysUpTime.0). The error says what is wrong: unreachable, wrong community, bad v3 login.
    pub async fn connect(config: SnmpConfig) -> Result<Self, SnmpError> {
        let address = config.address.clone();
        let vlan = config.vlan;
        let mut transport = Transport::new(config);
        transport
            .request(&Req::Get(vec![mib::SYS_UPTIME_0.to_vec()]))
            .await?;
        Ok(SnmpSwitch {
            transport: tokio::sync::Mutex::new(transport),
            fdb: std::sync::Mutex::new(FdbCache::default()),
            port_list_len: std::sync::atomic::AtomicUsize::new(0),
            address,
            vlan,
        })
    }

    /// `host:port` of the switch.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The default VLAN from the configuration (used by [`SnmpSwitch::install`] and
    /// [`SnmpSwitch::remove`]; the `*_mac` methods take the VLAN explicitly).
    pub fn vlan(&self) -> u16 {
        self.vlan
    }

    pub(crate) async fn request(&self, req: &Req) -> Result<Varbinds, SnmpError> {
        self.transport.lock().await.request(req).await
    }

    /// Reads every object under `root` with GETBULK, in order.
    pub async fn walk(&self, root: &[u32]) -> Result<Varbinds, SnmpError> {
        let mut out: Varbinds = Vec::new();
        let mut cur = root.to_vec();
        let mut reps = BULK_REPETITIONS;
        loop {
            let got = match self.request(&Req::GetBulk(cur.clone(), reps)).await {
                Err(SnmpError::TooBig { .. }) if reps > 1 => {
                    reps = (reps / 2).max(1);
                    continue;
                }
                r => r?,
            };
            if got.is_empty() {
                return Ok(out);
            }
            for (oid, v) in got {
                if !oid.starts_with(root) || v == Val::EndOfMibView {
                    return Ok(out);
                }
                if oid <= cur {
                    return Err(SnmpError::Protocol {
                        address: self.address.clone(),
                        detail: format!(
                            "walk went backwards ({} after {})",
                            format_oid(&oid),
                            format_oid(&cur)
                        ),
                    });
                }
                cur.clone_from(&oid);
                out.push((oid, v));
                if out.len() > MAX_WALK {
                    return Err(SnmpError::Protocol {
                        address: self.address.clone(),
                        detail: format!("more than {MAX_WALK} objects under {}", format_oid(root)),
                    });
                }
            }
        }
    }

    /// The FDB entries of fdbId `vlan` (fdbId = VLAN on independent-learning switches, and
    /// 1 on untagged ones). Refreshes the port cache of that VLAN.
    pub async fn fdb(&self, vlan: u16) -> Result<Vec<FdbEntry>, SnmpError> {
        let mut root = DOT1Q_TP_FDB_ENTRY.to_vec();
        root.push(mib::FDB_COL_PORT);
        root.push(u32::from(vlan));
        let ports = self.walk(&root).await?;
        let mut root_st = DOT1Q_TP_FDB_ENTRY.to_vec();
        root_st.push(mib::FDB_COL_STATUS);
        root_st.push(u32::from(vlan));
        let statuses: HashMap<Vec<u32>, i64> = self
            .walk(&root_st)
            .await?
            .into_iter()
            .filter_map(|(o, v)| match v {
                Val::Integer(n) => Some((o[root_st.len()..].to_vec(), n)),
                _ => None,
            })
            .collect();
        let mut entries = Vec::new();
        for (oid, v) in ports {
            let idx = &oid[root.len()..];
            let (Some(mac), Val::Integer(port)) = (MacAddr::from_sub_ids(idx), &v) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            entries.push(FdbEntry {
                fdb_id: vlan,
                mac,
                port,
                status: statuses.get(idx).copied(),
            });
        }
        let mut cache = self.fdb.lock().unwrap_or_else(|e| e.into_inner());
        cache.ports.retain(|(v, _), _| *v != vlan);
        for e in entries.iter().filter(|e| e.port != 0) {
            cache.ports.insert((vlan, e.mac), e.port);
        }
        cache.read_at.insert(vlan, Instant::now());
        Ok(entries)
    }

    /// The port each MAC was learned on (`None` if the switch does not know it). Served
    /// from a cache; a miss or a cache older than 60 s reads the FDB again (once per call).
    pub async fn ports_of(
        &self,
        vlan: u16,
        macs: &[MacAddr],
    ) -> Result<Vec<Option<u16>>, SnmpError> {
        let find = |cache: &FdbCache| -> Vec<Option<u16>> {
            macs.iter()
                .map(|m| cache.ports.get(&(vlan, *m)).copied())
                .collect()
        };
        {
            let cache = self.fdb.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = cache
                .read_at
                .get(&vlan)
                .is_some_and(|t| t.elapsed() < FDB_CACHE_MAX_AGE);
            let found = find(&cache);
            if fresh && found.iter().all(Option::is_some) {
                return Ok(found);
            }
        }
        self.fdb(vlan).await?;
        let cache = self.fdb.lock().unwrap_or_else(|e| e.into_inner());
        Ok(find(&cache))
    }

    /// The port one MAC was learned on (see [`SnmpSwitch::ports_of`]).
    pub async fn port_of(&self, vlan: u16, mac: MacAddr) -> Result<Option<u16>, SnmpError> {
        Ok(self
            .ports_of(vlan, &[mac])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Forgets the FDB cache (e.g. after a topology change).
    pub fn invalidate_fdb_cache(&self) {
        *self.fdb.lock().unwrap_or_else(|e| e.into_inner()) = FdbCache::default();
    }

    /// Bridge port number -> ifIndex (dot1dBasePortIfIndex).
    pub async fn port_ifindexes(&self) -> Result<BTreeMap<u16, u32>, SnmpError> {
        let got = self.walk(DOT1D_BASE_PORT_IFINDEX).await?;
        Ok(got
            .into_iter()
            .filter_map(|(oid, v)| {
                let port = u16::try_from(*oid.get(DOT1D_BASE_PORT_IFINDEX.len())?).ok()?;
                let Val::Integer(ifx) = v else { return None };
                Some((port, u32::try_from(ifx).ok()?))
            })
            .collect())
    }

    /// PortList width to write: the widest one the switch has served (octets).
    pub(crate) fn port_list_width(&self) -> usize {
        self.port_list_len
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn note_width(&self, bytes: &[u8]) {
        self.port_list_len
            .fetch_max(bytes.len(), std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn index(vlan: u16, mac: MacAddr) -> StaticMcastIndex {
        StaticMcastIndex {
            vlan,
            mac,
            receive_port: 0,
        }
    }

    /// StaticEgressPorts of the row (`vlan`, `mac`, receive port 0), or `None` if there is no
    /// such row (absent, or status invalid(2)).
    pub async fn egress_ports(
        &self,
        vlan: u16,
        mac: MacAddr,
    ) -> Result<Option<PortSet>, SnmpError> {
        let idx = Self::index(vlan, mac);
        let got = match self
            .request(&Req::Get(vec![
                idx.column_oid(mib::SM_COL_EGRESS),
                idx.column_oid(mib::SM_COL_STATUS),
            ]))
            .await
        {
            // SNMPv1-style agents answer an absent row with noSuchName.
            Err(SnmpError::NoSuchObject { .. }) => return Ok(None),
            r => r?,
        };
        let mut egress = None;
        let mut st = None;
        for (oid, v) in got {
            match v {
                Val::Octets(b) if oid == idx.column_oid(mib::SM_COL_EGRESS) => {
                    self.note_width(&b);
                    egress = Some(decode_port_list(&b).map_err(|e| SnmpError::Protocol {
                        address: self.address.clone(),
                        detail: e.to_string(),
                    })?);
                }
                Val::Integer(n) if oid == idx.column_oid(mib::SM_COL_STATUS) => st = Some(n),
                _ => {}
            }
        }
        if st == Some(status::INVALID) {
            return Ok(None);
        }
        Ok(egress)
    }

    /// The ports of parent group `group` (the row of its MAC, 33:33 or 01:00:5e, in `vlan`), if any.
    pub async fn parent_ports(
        &self,
        vlan: u16,
        group: Ipv6Addr,
    ) -> Result<Option<PortSet>, SnmpError> {
        self.egress_ports(vlan, MacAddr::of_group(group)).await
    }

    /// Writes `ports` as StaticEgressPorts of the row for `mac` (creating it), in one SET
    /// PDU carrying {StaticEgressPorts, Status = permanent(3)}. Idempotent, so a retry after
    /// a lost answer is safe. On a timeout the row may or may not have been written:
    /// call [`SnmpSwitch::remove_mac`] (also idempotent) to be sure it is gone.
    pub async fn install_mac(
        &self,
        vlan: u16,
        mac: MacAddr,
        ports: &PortSet,
    ) -> Result<(), SnmpError> {
        check_ports(ports)?;
        let idx = Self::index(vlan, mac);
        let list = encode_port_list(ports, self.port_list_width());
        self.request(&Req::Set(vec![
            (idx.column_oid(mib::SM_COL_EGRESS), Val::Octets(list)),
            (
                idx.column_oid(mib::SM_COL_STATUS),
                Val::Integer(status::PERMANENT),
            ),
        ]))
        .await?;
        Ok(())
    }

    /// Installs rendezvous group `group` (the row of its 33:33 or 01:00:5e MAC) on `ports`, in the default VLAN.
    pub async fn install(&self, group: Ipv6Addr, ports: &PortSet) -> Result<(), SnmpError> {
        self.install_mac(self.vlan, MacAddr::of_group(group), ports)
            .await
    }

    /// Deletes the row for `mac` (Status = invalid(2)). Deleting an absent row succeeds.
    pub async fn remove_mac(&self, vlan: u16, mac: MacAddr) -> Result<(), SnmpError> {
        let idx = Self::index(vlan, mac);
        let r = self
            .request(&Req::Set(vec![(
                idx.column_oid(mib::SM_COL_STATUS),
                Val::Integer(status::INVALID),
            )]))
            .await;
        match r {
            Ok(_) => Ok(()),
            // Some agents refuse to "create" a row just to delete it: it is already gone.
            Err(SnmpError::NoSuchObject { .. })
            | Err(SnmpError::NotWritable {
                status: "noCreation",
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes rendezvous group `group` from the default VLAN.
    pub async fn remove(&self, group: Ipv6Addr) -> Result<(), SnmpError> {
        self.remove_mac(self.vlan, MacAddr::of_group(group)).await
    }
}

/// Refuses ports a PortList cannot carry.
pub(crate) fn check_ports(ports: &PortSet) -> Result<(), SnmpError> {
    match ports.iter().find(|p| !(1..=mib::MAX_PORT).contains(*p)) {
        Some(p) => Err(SnmpError::InvalidRequest(format!(
            "port {p} cannot be written in a PortList (1..={})",
            mib::MAX_PORT
        ))),
        None => Ok(()),
    }
}
