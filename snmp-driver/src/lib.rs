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
//! # let _ = port; Ok(()) }
//! ```
//! The credentials file format is documented in [`config`].

pub mod config;
pub mod error;
pub mod mib;
pub mod passpersist;
pub mod session;
pub mod switch;
pub mod testlab;

pub use config::{AuthProtocol, ConfigError, Credentials, PrivProtocol, Secret, SnmpConfig};
pub use error::SnmpError;
pub use mib::{MacAddr, MacSubIds, PortSet};
pub use switch::{FdbEntry, SnmpSwitch, StaticMulticastRow};
