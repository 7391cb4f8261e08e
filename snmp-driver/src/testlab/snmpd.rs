//! [`TestSnmpd`]: a real net-snmp `snmpd` whose Q-BRIDGE-MIB is served by
//! `subcast-qbridge-passpersist` for one Linux bridge, i.e. an SNMP-managed test switch.
//!
//! ```no_run
//! # fn demo() -> Result<(), subcast_snmp::testlab::SnmpdError> {
//! use subcast_snmp::testlab::{TestSnmpd, V3User, passpersist_binary};
//! // snmpd inside namespace "sw1" on 127.0.0.1:1161 there, for its bridge br0, v2c and v3:
//! let snmpd = TestSnmpd::builder(passpersist_binary(), "/tmp/sw1-snmpd")
//!     .netns("sw1")
//!     .bridge("br0")
//!     .v3(V3User::new("subcast", "auth-pass-123", "priv-pass-456"))
//!     .start()?; // returns once snmpd answers through the handler
//! let v3 = snmpd.v3_config().expect("v3 user configured"); // a subcast-snmp SnmpConfig
//! # let _ = (v3, snmpd.v2c_config()); Ok(()) }
//! ```
//! The credentials file for a `backend: snmp` agent is [`TestSnmpd::credentials_yaml`].
//! snmpd (and with it the handler, its child) is killed by PID when the value is dropped.

use crate::config::SnmpConfig;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Default read-write v2c community.
pub const DEFAULT_COMMUNITY: &str = "subcast-rw";
/// Default listening port of an snmpd inside a namespace (on its loopback).
pub const DEFAULT_NETNS_PORT: u16 = 1161;
/// How long [`TestSnmpdBuilder::start`] waits for snmpd to answer through the handler,
/// unless [`TestSnmpdBuilder::ready_timeout`] says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// An SNMPv3 user with authPriv (HMAC-SHA-1 / AES-128), as `createUser NAME SHA A AES P`.
#[derive(Clone, PartialEq, Eq)]
pub struct V3User {
    /// USM user name.
    pub user: String,
    /// Authentication password (at least 8 characters for net-snmp).
    pub auth_password: String,
    /// Privacy password (at least 8 characters).
    pub priv_password: String,
}

impl V3User {
    /// A user with these passwords.
    pub fn new(user: &str, auth_password: &str, priv_password: &str) -> Self {
        V3User {
            user: user.into(),
            auth_password: auth_password.into(),
            priv_password: priv_password.into(),
        }
    }
}

impl std::fmt::Debug for V3User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3User")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Starting the test switch failed.
#[derive(Debug, thiserror::Error)]
pub enum SnmpdError {
    /// A file in the work directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot start {what}: {source} (is the `{package}` package installed?)")]
    Spawn {
        /// What was started.
        what: &'static str,
        /// The Debian package that has it.
        package: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// snmpd exited during start-up.
    #[error("snmpd exited during start-up ({status}); its log {log}:\n{tail}")]
    Exited {
        /// The exit status.
        status: std::process::ExitStatus,
        /// The log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// snmpd did not answer through the handler in time.
    #[error(
        "snmpd at {address} did not answer a GETNEXT of dot1dBasePortIfIndex through the handler within {waited:?} (last answer: {last}); logs snmpd.log and handler.log in {}; handler log:\n{tail}",
        dir.display()
    )]
    NotReady {
        /// Where it should listen.
        address: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// The last `snmpgetnext` output.
        last: String,
        /// The work directory holding both logs.
        dir: PathBuf,
        /// The last lines of the handler log.
        tail: String,
    },
}

/// How to start a [`TestSnmpd`]; see [`TestSnmpd::builder`].
#[derive(Debug, Clone)]
pub struct TestSnmpdBuilder {
    handler: PathBuf,
    dir: PathBuf,
    bridge: String,
    netns: Option<String>,
    snmpd_in_netns: Option<bool>,
    listen: Option<SocketAddr>,
    community: String,
    v2c: bool,
    v3: Option<V3User>,
    group_prefix: String,
    ipv4_group_prefix: Option<String>,
    ready_timeout: Duration,
}

/// A running snmpd serving one bridge through the pass_persist handler.
#[derive(Debug)]
pub struct TestSnmpd {
    child: Option<Child>,
    address: SocketAddr,
    dir: PathBuf,
    community: String,
    v2c: bool,
    v3: Option<V3User>,
    netns: Option<String>,
    in_netns: bool,
}

impl TestSnmpd {
    /// Options for an snmpd with the handler binary `handler` (see
    /// [`super::passpersist_binary`]) keeping its config, logs and pidfile in `dir`
    /// (created). Defaults: bridge `br0` in the current namespace, v2c community
    /// [`DEFAULT_COMMUNITY`] only, group prefix `ff3e::/96`.
    pub fn builder(handler: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> TestSnmpdBuilder {
        TestSnmpdBuilder {
            handler: handler.into(),
            dir: dir.into(),
            bridge: "br0".into(),
            netns: None,
            snmpd_in_netns: None,
            listen: None,
            community: DEFAULT_COMMUNITY.into(),
            v2c: true,
            v3: None,
            group_prefix: "ff3e::/96".into(),
            ipv4_group_prefix: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// Where snmpd listens (inside its namespace when it runs in one).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// True if snmpd runs inside the bridge's namespace (reach it from there).
    pub fn runs_in_netns(&self) -> bool {
        self.in_netns
    }

    /// A v2c client config for it (1 s timeout, 2 retries); refused by an snmpd
    /// started with [`TestSnmpdBuilder::v3_only`].
    pub fn v2c_config(&self) -> SnmpConfig {
        SnmpConfig::v2c(self.address.to_string(), self.community.clone())
    }

    /// A v3 authPriv SHA/AES client config, if a v3 user was configured.
    pub fn v3_config(&self) -> Option<SnmpConfig> {
        let u = self.v3.as_ref()?;
        Some(SnmpConfig::v3_sha_aes(
            self.address.to_string(),
            u.user.clone(),
            u.auth_password.clone(),
            u.priv_password.clone(),
        ))
    }

    /// A `subcast-snmp` credentials file (YAML) for it: v3 if configured, else v2c.
    pub fn credentials_yaml(&self) -> String {
        match &self.v3 {
            Some(u) => format!(
                "address: \"{}\"\nv3:\n  user: \"{}\"\n  auth_protocol: sha\n  auth_password: \"{}\"\n  priv_protocol: aes\n  priv_password: \"{}\"\n",
                self.address, u.user, u.auth_password, u.priv_password
            ),
            None => format!(
                "address: \"{}\"\nv2c:\n  community: \"{}\"\n",
                self.address, self.community
            ),
        }
    }

    /// The work directory (snmpd.conf, snmpd.log, handler.log, snmpd.pid).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The handler's log so far.
    pub fn handler_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("handler.log")).unwrap_or_default()
    }

    /// snmpd's PID (the handler is its child).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` (e.g. "STOP", "CONT", "KILL") to snmpd by its PID.
    pub fn signal(&self, sig: &str) -> std::io::Result<()> {
        let Some(pid) = self.pid() else {
            return Err(std::io::Error::other("snmpd is not running"));
        };
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill -{sig} {pid} failed")))
        }
    }

    /// Kills snmpd (SIGKILL by PID) and reaps it; the handler exits when its pipe closes.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks snmpd for the first dot1dBasePortIfIndex object with `snmpgetnext`
    /// (v2c, or v3 authPriv when snmpd has no community).
    fn probe(&self) -> String {
        let mut cmd = tool_command(
            self.netns.as_deref().filter(|_| self.in_netns),
            "snmpgetnext",
        );
        match (&self.v3, self.v2c) {
            (Some(u), false) => cmd
                .args(["-v3", "-l", "authPriv", "-u", &u.user, "-a", "SHA"])
                .args(["-A", &u.auth_password, "-x", "AES", "-X", &u.priv_password]),
            _ => cmd.args(["-v2c", "-c", &self.community]),
        };
        cmd.args(["-On", "-t", "1", "-r", "0"])
            .arg(self.address.to_string())
            .arg(".1.3.6.1.2.1.17.1.4.1.2")
            .env("MIBS", "");
        match cmd.output() {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("cannot run snmpgetnext (install the `snmp` package): {e}"),
        }
    }
}

impl Drop for TestSnmpd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `prog` in namespace `netns` (through `ip netns exec`) or here.
fn tool_command(netns: Option<&str>, prog: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, prog]);
            c
        }
        None => Command::new(prog),
    }
}

impl TestSnmpdBuilder {
    /// The bridge to serve (default `br0`).
    pub fn bridge(mut self, name: &str) -> Self {
        self.bridge = name.into();
        self
    }

    /// The namespace holding the bridge. By default snmpd then runs inside it too (see
    /// [`TestSnmpdBuilder::snmpd_in_netns`]).
    pub fn netns(mut self, name: &str) -> Self {
        self.netns = Some(name.into());
        self
    }

    /// With a namespace: run snmpd inside it (`true`, the default; reach it from inside,
    /// as an agent in that namespace does) or on the host loopback with the handler
    /// entering the namespace (`false`; reach it from the host, as this crate's tests do).
    pub fn snmpd_in_netns(mut self, inside: bool) -> Self {
        self.snmpd_in_netns = Some(inside);
        self
    }

    /// Listening address (default: `127.0.0.1:1161` inside a namespace, a free loopback
    /// port on the host).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// The read-write v2c community (default [`DEFAULT_COMMUNITY`]).
    pub fn community(mut self, community: &str) -> Self {
        self.community = community.into();
        self
    }

    /// Adds an SNMPv3 authPriv user.
    pub fn v3(mut self, user: V3User) -> Self {
        self.v3 = Some(user);
        self
    }

    /// Only this SNMPv3 authPriv user, no v2c community: whoever writes rows speaks
    /// v3 (the start-up check too).
    pub fn v3_only(mut self, user: V3User) -> Self {
        self.v3 = Some(user);
        self.v2c = false;
        self
    }

    /// The handler's `--ipv6-group-prefix` (default `ff3e::/96`).
    pub fn group_prefix(mut self, prefix: &str) -> Self {
        self.group_prefix = prefix.into();
        self
    }

    /// The handler's `--ipv4-group-prefix` (default none: IPv6 rows only).
    pub fn ipv4_group_prefix(mut self, prefix: &str) -> Self {
        self.ipv4_group_prefix = Some(prefix.into());
        self
    }

    /// How long [`TestSnmpdBuilder::start`] waits for the first answer through the handler
    /// (default [`DEFAULT_READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, d: Duration) -> Self {
        self.ready_timeout = d;
        self
    }

    /// Writes snmpd.conf, starts snmpd and waits until it answers through the handler.
    pub fn start(self) -> Result<TestSnmpd, SnmpdError> {
        let in_netns = self.netns.is_some() && self.snmpd_in_netns.unwrap_or(true);
        let address = match self.listen {
            Some(a) => a,
            None if in_netns => SocketAddr::from(([127, 0, 0, 1], DEFAULT_NETNS_PORT)),
            None => free_loopback_port(),
        };
        let persist = self.dir.join("persist");
        std::fs::create_dir_all(&persist).map_err(|source| SnmpdError::Write {
            path: persist.clone(),
            source,
        })?;
        let conf_path = self.dir.join("snmpd.conf");
        std::fs::write(&conf_path, self.conf(address, in_netns)).map_err(|source| {
            SnmpdError::Write {
                path: conf_path.clone(),
                source,
            }
        })?;
        let log = self.dir.join("snmpd.log");
        let mut cmd = tool_command(self.netns.as_deref().filter(|_| in_netns), "snmpd");
        cmd.args(["-f", "-C", "-c"])
            .arg(&conf_path)
            .arg("-Lf")
            .arg(&log)
            .arg("-p")
            .arg(self.dir.join("snmpd.pid"))
            .env("MIBS", "")
            .env("SNMP_PERSISTENT_DIR", &persist)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|source| SnmpdError::Spawn {
            what: "snmpd",
            package: "snmpd",
            source,
        })?;
        let mut snmpd = TestSnmpd {
            child: Some(child),
            address,
            dir: self.dir.clone(),
            community: self.community.clone(),
            v2c: self.v2c,
            v3: self.v3.clone(),
            netns: self.netns.clone(),
            in_netns,
        };
        // Ready when a GETNEXT through the handler answers (snmpd starts the handler at the
        // first request for its subtree).
        let t0 = Instant::now();
        loop {
            if let Some(child) = snmpd.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                snmpd.child = None;
                return Err(SnmpdError::Exited {
                    status,
                    tail: tail(&log, 20),
                    log,
                });
            }
            let out = snmpd.probe();
            if out.starts_with(".1.3.6.1.2.1.17.1.4.1.2.") {
                return Ok(snmpd);
            }
            if t0.elapsed() > self.ready_timeout {
                return Err(SnmpdError::NotReady {
                    address,
                    waited: t0.elapsed(),
                    last: out.trim().to_string(),
                    tail: tail(&self.dir.join("handler.log"), 20),
                    dir: self.dir.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn conf(&self, address: SocketAddr, in_netns: bool) -> String {
        let (transport, rw) = if address.is_ipv6() {
            ("udp6", "rwcommunity6")
        } else {
            ("udp", "rwcommunity")
        };
        let mut c = format!("agentAddress {transport}:{address}\n");
        if self.v2c || self.v3.is_none() {
            c.push_str(&format!("{rw} {} default\n", self.community));
        }
        if let Some(u) = &self.v3 {
            c.push_str(&format!(
                "createUser {} SHA {} AES {}\nrwuser {} priv\n",
                u.user, u.auth_password, u.priv_password, u.user
            ));
        }
        let netns_arg = match (&self.netns, in_netns) {
            (Some(ns), false) => format!(" --netns {ns}"),
            _ => String::new(),
        };
        let v4_arg = match &self.ipv4_group_prefix {
            Some(p) => format!(" --ipv4-group-prefix {p}"),
            None => String::new(),
        };
        c.push_str(&format!(
            "pass_persist .1.3.6.1.2.1.17 {} --bridge {}{netns_arg} --ipv6-group-prefix {}{v4_arg} --log-file {}\n",
            self.handler.display(),
            self.bridge,
            self.group_prefix,
            self.dir.join("handler.log").display()
        ));
        c
    }
}

/// A UDP port free on the host loopback right now.
fn free_loopback_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], DEFAULT_NETNS_PORT)))
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return format!("({} cannot be read)", path.display());
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_places_the_handler_and_users() {
        let b = TestSnmpd::builder("/bin/h", "/tmp/x")
            .netns("ns1")
            .v3(V3User::new("u", "authauth", "privpriv"));
        let inside = b.conf("127.0.0.1:1161".parse().unwrap(), true);
        assert!(
            inside.contains("agentAddress udp:127.0.0.1:1161\nrwcommunity subcast-rw default\n")
        );
        let v6 = b.conf("[::1]:1161".parse().unwrap(), true);
        assert!(v6.contains("agentAddress udp6:[::1]:1161\nrwcommunity6 subcast-rw default\n"));
        assert!(inside.contains("createUser u SHA authauth AES privpriv\nrwuser u priv\n"));
        assert!(inside.contains("/bin/h --bridge br0 --ipv6-group-prefix ff3e::/96"));
        let outside = b.conf("127.0.0.1:9".parse().unwrap(), false);
        assert!(outside.contains("--bridge br0 --netns ns1 --ipv6"));
        assert!(!format!("{:?}", V3User::new("u", "authauth", "p")).contains("authauth"));
        let only = TestSnmpd::builder("/bin/h", "/tmp/x")
            .v3_only(V3User::new("u", "authauth", "privpriv"))
            .conf("127.0.0.1:1161".parse().unwrap(), true);
        assert!(!only.contains("community"), "{only}");
        assert!(only.contains("rwuser u priv\n"), "{only}");
    }
}
