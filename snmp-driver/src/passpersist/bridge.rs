//! Reads and writes one Linux bridge through iproute2 (`ip -j`, `bridge -j`).
//!
//! Shelling out is acceptable here: this is the test switch, not the product path
//! (~2 ms per `bridge` process, see lab-notes). Every command can target a netns (`-n NS`).

use crate::mib::MacAddr;
use serde::Deserialize;
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;

/// Error from an iproute2 command.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The program could not be started.
    #[error("cannot run `{cmd}`: {source} (is iproute2 installed?)")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("`{cmd}` failed: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Its JSON output was not what iproute2 prints.
    #[error("cannot parse the output of `{cmd}`: {detail}")]
    Parse {
        /// The command line.
        cmd: String,
        /// What went wrong.
        detail: String,
    },
}

/// One port of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    /// The bridge's own port number (`/sys/class/net/BR/brif/IF/port_no`).
    pub port_no: u16,
    /// The interface index.
    pub ifindex: u32,
    /// The interface name.
    pub ifname: String,
}

/// One FDB entry on a bridge port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC address.
    pub mac: MacAddr,
    /// The port interface name.
    pub ifname: String,
    /// True for the port's own (local, permanent) address.
    pub local: bool,
    /// True for a static entry added by an operator.
    pub is_static: bool,
}

/// A bridge, possibly inside a network namespace.
#[derive(Debug, Clone)]
pub struct Bridge {
    name: String,
    netns: Option<String>,
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return p;
        }
    }
    name.to_string()
}

#[derive(Deserialize)]
struct IpLink {
    ifindex: u32,
    ifname: String,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

#[derive(Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_slave_data: Option<SlaveData>,
}

#[derive(Deserialize)]
struct SlaveData {
    #[serde(default)]
    no: Option<String>,
}

#[derive(Deserialize)]
struct FdbJson {
    mac: String,
    ifname: String,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Deserialize)]
struct MdbDump {
    #[serde(default)]
    mdb: Vec<MdbJson>,
}

#[derive(Deserialize)]
struct MdbJson {
    port: String,
    grp: String,
    #[serde(default)]
    state: Option<String>,
}

impl Bridge {
    /// A bridge named `name`, in netns `netns` if given (else the current one).
    pub fn new(name: impl Into<String>, netns: Option<String>) -> Self {
        Bridge {
            name: name.into(),
            netns,
        }
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<String, BridgeError> {
        let mut cmd = Command::new(tool(prog));
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        cmd.args(args);
        let line = format!("{prog} {}", args.join(" "));
        let out = cmd.output().map_err(|source| BridgeError::Spawn {
            cmd: line.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(BridgeError::Failed {
                cmd: line,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json<T: for<'de> Deserialize<'de>>(
        &self,
        prog: &str,
        args: &[&str],
    ) -> Result<T, BridgeError> {
        let text = self.run(prog, args)?;
        let text = if text.trim().is_empty() { "[]" } else { &text };
        serde_json::from_str(text).map_err(|e| BridgeError::Parse {
            cmd: format!("{prog} {}", args.join(" ")),
            detail: e.to_string(),
        })
    }

    /// The bridge's ports with their port numbers, sorted by port number.
    pub fn ports(&self) -> Result<Vec<BridgePort>, BridgeError> {
        let links: Vec<IpLink> =
            self.json("ip", &["-d", "-j", "link", "show", "master", &self.name])?;
        let mut ports = Vec::new();
        for l in links {
            let no = l
                .linkinfo
                .and_then(|i| i.info_slave_data)
                .and_then(|s| s.no)
                .and_then(|n| parse_port_no(&n));
            if let Some(port_no) = no {
                ports.push(BridgePort {
                    port_no,
                    ifindex: l.ifindex,
                    ifname: l.ifname,
                });
            }
        }
        ports.sort_by_key(|p| p.port_no);
        Ok(ports)
    }

    /// FDB entries that the bridge forwards by (entries with `master BR`).
    pub fn fdb(&self) -> Result<Vec<FdbEntry>, BridgeError> {
        let entries: Vec<FdbJson> =
            self.json("bridge", &["-j", "fdb", "show", "br", &self.name])?;
        Ok(entries
            .into_iter()
            .filter(|e| e.master.as_deref() == Some(self.name.as_str()))
            .filter_map(|e| {
                let mac = e.mac.parse().ok()?;
                let state = e.state.unwrap_or_default();
                Some(FdbEntry {
                    mac,
                    ifname: e.ifname,
                    local: state == "permanent",
                    is_static: state == "static" || e.flags.iter().any(|f| f == "static"),
                })
            })
            .collect())
    }

    /// Permanent (static) IPv6 MDB entries: (group, port interface name).
    pub fn static_mdb(&self) -> Result<Vec<(Ipv6Addr, String)>, BridgeError> {
        let dumps: Vec<MdbDump> = self.json("bridge", &["-j", "mdb", "show", "dev", &self.name])?;
        Ok(dumps
            .into_iter()
            .flat_map(|d| d.mdb)
            .filter(|m| m.state.as_deref() == Some("permanent"))
            .filter_map(|m| Some((m.grp.parse().ok()?, m.port)))
            .collect())
    }

    /// `bridge mdb add dev BR port PORT grp GROUP permanent`.
    pub fn mdb_add(&self, port: &str, group: Ipv6Addr) -> Result<(), BridgeError> {
        let g = group.to_string();
        self.run(
            "bridge",
            &[
                "mdb",
                "add",
                "dev",
                &self.name,
                "port",
                port,
                "grp",
                &g,
                "permanent",
            ],
        )
        .map(|_| ())
    }

    /// `bridge mdb del dev BR port PORT grp GROUP`.
    pub fn mdb_del(&self, port: &str, group: Ipv6Addr) -> Result<(), BridgeError> {
        let g = group.to_string();
        self.run(
            "bridge",
            &["mdb", "del", "dev", &self.name, "port", port, "grp", &g],
        )
        .map(|_| ())
    }
}

fn parse_port_no(s: &str) -> Option<u16> {
    match s.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_numbers_parse() {
        assert_eq!(parse_port_no("0x1"), Some(1));
        assert_eq!(parse_port_no("0x1f"), Some(31));
        assert_eq!(parse_port_no("7"), Some(7));
        assert_eq!(parse_port_no("0xzz"), None);
    }
}
