//! `backend: snmp` switches in a running lab. The lab builds each one as a Linux
//! bridge; here it becomes an SNMP-managed switch: a real net-snmp `snmpd` in the
//! switch's namespace (`127.0.0.1:1161` there) whose Q-BRIDGE-MIB is served by the
//! pass_persist handler `subcast-qbridge-passpersist` for `br0`
//! ([`subcast_snmp::testlab::TestSnmpd`], the same test switch the SNMP driver's and
//! agent's tests use), and the agent of that switch runs the `snmp` backend against
//! it: SNMPv2c with a random read-write community, or (topology `snmp: {version:
//! v3}`) SNMPv3 authPriv (HMAC-SHA-1 / AES-128) with a random user's passwords and
//! no community at all (snmpd answers nothing but v3 there).
//! Credentials go into `snmp-<S>.yaml` (`chmod 600`) in the lab's scratch directory.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use labs::{Lab, SnmpVersion};
use subcast_snmp::testlab::{TestSnmpd, V3User};

use crate::stack::{POOL, random_hex, secret};

/// The static multicast rows the agent can install: the most the MIB leaves
/// unknown, so the lab says what its bridges hold (`mcast_hash_max`).
pub const TABLE_CAPACITY: u32 = 65_536;

/// One SNMP switch's snmpd, and how its agent logs in.
#[derive(Debug)]
pub struct SnmpSwitch {
    /// The version the agent uses.
    pub version: SnmpVersion,
    /// The credentials file of the agent (`subcast-snmp` format).
    pub credentials: PathBuf,
    /// snmpd (killed by PID when dropped; its handler exits with it).
    pub snmpd: TestSnmpd,
}

impl SnmpSwitch {
    /// The agent's `backend:` section (and the table capacity the MIB cannot tell).
    pub fn backend_yaml(&self) -> String {
        format!(
            "backend: {{ kind: snmp, credentials: \"{}\" }}\ntable_capacity: {TABLE_CAPACITY}\n",
            self.credentials.display()
        )
    }

    /// What the report says about it: version, address (inside the switch's
    /// namespace), and the rows written over SNMP so far as the switch's handler
    /// logged them (`row programmed`: one SET of a dot1qStaticMulticastTable row
    /// applied to the bridge's MDB).
    pub fn describe(&self) -> serde_json::Value {
        let rows = self
            .snmpd
            .handler_log()
            .lines()
            .filter(|l| l.contains("row programmed"))
            .count();
        serde_json::json!({
            "version": self.version.name(),
            "address": self.snmpd.address().to_string(),
            "handler": "subcast-qbridge-passpersist (pass_persist .1.3.6.1.2.1.17)",
            "rows_programmed": rows,
        })
    }
}

/// The handler's `--ipv6-group-prefix`: the /96 holding the rendezvous pool (rows
/// carry only a group's low 32 bits, in its 33:33 MAC).
pub fn group_prefix() -> Result<String> {
    let (addr, _) = POOL
        .split_once('/')
        .ok_or_else(|| anyhow!("rendezvous pool {POOL} has no prefix length"))?;
    let a: Ipv6Addr = addr
        .parse()
        .with_context(|| format!("rendezvous pool {POOL}"))?;
    let s = a.segments();
    let p = Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], 0, 0);
    Ok(format!("{p}/96"))
}

/// The handler's `--ipv4-group-prefix`: the /16 holding the IPv4 rendezvous pool (rows
/// carry only a group's low 23 bits, in its 01:00:5e MAC; the prefix says which of the 32
/// groups sharing a MAC the row stands for).
pub fn ipv4_group_prefix() -> Result<String> {
    let pool = crate::stack_config::POOL_V4;
    let (addr, _) = pool
        .split_once('/')
        .ok_or_else(|| anyhow!("rendezvous pool {pool} has no prefix length"))?;
    let a: std::net::Ipv4Addr = addr
        .parse()
        .with_context(|| format!("rendezvous pool {pool}"))?;
    let o = a.octets();
    Ok(format!("{}.{}.0.0/16", o[0], o[1]))
}

/// Starts snmpd on every `backend: snmp` switch of the lab (none: an empty map);
/// each returns once it answers through the handler.
pub fn start_all(
    lab: &Lab,
    handler: Option<&Path>,
    dir: &Path,
) -> Result<BTreeMap<String, SnmpSwitch>> {
    let mut out = BTreeMap::new();
    let prefix = group_prefix()?;
    let prefix4 = ipv4_group_prefix()?;
    for (name, spec) in &lab.topology().switches {
        let Some(version) = spec.snmp_version() else {
            continue;
        };
        let handler = handler.ok_or_else(|| {
            anyhow!(
                "switch {name} is `backend: snmp` but {} was not found next to the daemons: \
                 build it ({})",
                crate::bins::SNMP_HANDLER,
                crate::bins::build_command()
            )
        })?;
        let work = dir.join(format!("snmpd-{name}"));
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let mut b = TestSnmpd::builder(handler, &work)
            .netns(&lab.switch(name).netns)
            .bridge(&lab.switch(name).bridge)
            .community(&format!("c{}", random_hex(12)?))
            .group_prefix(&prefix)
            .ipv4_group_prefix(&prefix4);
        if version == SnmpVersion::V3 {
            b = b.v3_only(V3User::new(
                "subcast",
                &format!("a{}", random_hex(12)?),
                &format!("p{}", random_hex(12)?),
            ));
        }
        let snmpd = b
            .start()
            .with_context(|| format!("starting snmpd for switch {name}"))?;
        let credentials = dir.join(format!("snmp-{name}.yaml"));
        secret(&credentials, &snmpd.credentials_yaml())?;
        tracing::info!(switch = %name, version = version.name(), address = %snmpd.address(), "snmpd up");
        out.insert(
            name.clone(),
            SnmpSwitch {
                version,
                credentials,
                snmpd,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prefix_holds_the_pool() {
        assert_eq!(super::group_prefix().unwrap(), "ff05::5c:0:0/96");
        assert_eq!(super::ipv4_group_prefix().unwrap(), "239.92.0.0/16");
    }
}
