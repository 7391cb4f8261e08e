//! Q-BRIDGE-MIB static multicast over SNMP v2c/v3 ([`SnmpSwitch`]), and a pass_persist
//! handler that serves Q-BRIDGE-MIB from a Linux bridge ([`passpersist`], the test switch).
//!
//! ```no_run
//! # async fn demo() -> Result<(), subcast_snmp::SnmpError> {
//! use subcast_snmp::{SnmpConfig, SnmpSwitch, PortSet};
//! let cfg = SnmpConfig::from_file("/etc/subcast/switch-snmp.yaml".as_ref())
//!     .map_err(|e| subcast_snmp::SnmpError::InvalidRequest(e.to_string()))?;
//! let sw = SnmpSwitch::connect(cfg).await?; // checks reachability + credentials
//! let port = sw.port_of(1, "02:00:00:00:00:01".parse().unwrap()).await?;
//! let x = "ff3e::1:7".parse().unwrap();
//! sw.install(x, &PortSet::from([1, 2])).await?; // row (VLAN, 33:33:00:01:00:07, 0)
//! sw.remove(x).await?;
//! // Several rows in one SET PDU (see `rows` for what atomicity that gives):
//! use subcast_snmp::{MacAddr, RowChange};
//! let y: std::net::Ipv6Addr = "ff3e::1:8".parse().unwrap();
//! sw.set_rows(&[
//!     RowChange::Set { vlan: 1, mac: MacAddr::ipv6_multicast(x), ports: PortSet::from([1]) },
//!     RowChange::Delete { vlan: 1, mac: MacAddr::ipv6_multicast(y) },
//! ])
//! .await
//! .map_err(|e| e.source)?;
//! # let _ = port; Ok(()) }
//! ```
//! The credentials file format is documented in [`config`]. Test support (labs, a real
//! snmpd in front of a bridge) is `testlab`, behind the `testing` feature.

pub mod config;
pub mod error;
pub mod mib;
pub mod passpersist;
pub mod rows;
pub mod session;
pub mod switch;
#[cfg(feature = "testing")]
pub mod testlab;

pub use config::{AuthProtocol, ConfigError, Credentials, PrivProtocol, Secret, SnmpConfig};
pub use error::SnmpError;
pub use mib::{MacAddr, MacSubIds, PortSet};
pub use rows::{RowChange, SetRowsError, SetRowsOutcome};
pub use switch::{FdbEntry, SnmpSwitch, StaticMulticastRow};
