//! Open vSwitch switches (`backend: openflow`): a private OVS instance per switch,
//! userspace datapath, inside the switch's namespace.
//!
//! Each OpenFlow switch namespace runs its own `ovsdb-server` and `ovs-vswitchd`
//! (foreground, ended by PID at teardown) with their sockets in
//! `<lab workdir>/ovs-<SWITCH>/`. The bridge `br0` is `datapath_type=netdev`,
//! `protocols=OpenFlow13`, `fail_mode=secure`, and starts with one flow
//! `priority=0 actions=NORMAL` so it is a plain learning switch until a controller
//! (the agent) programs it. Hosts of a lab with OVS switches get `ethtool -K eth0 tx
//! off` (veth checksum offload would leave bad UDP checksums after the userspace
//! datapath).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::build::BRIDGE;
use crate::cmd::{self, run};
use crate::error::{LabError, Result};
use crate::lab::Lab;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Where a lab's OVS instance for one switch keeps its sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OvsInfo {
    /// Directory with `conf.db`, `db.sock`, logs and `br0.mgmt`.
    pub rundir: PathBuf,
    /// OVSDB remote for `ovs-vsctl --db=...`: `unix:<rundir>/db.sock`.
    pub db: String,
    /// Target for `ovs-ofctl -O OpenFlow13 ... <target>`: `unix:<rundir>/br0.mgmt`.
    pub ofctl_target: String,
    /// unixctl socket of ovs-vswitchd, for `ovs-appctl -t <this>`.
    pub vswitchd_ctl: String,
}

impl Lab {
    /// Start ovsdb-server and ovs-vswitchd in `ns` and create `br0` with MAC `mac`.
    pub(crate) fn start_ovs(&mut self, switch: &str, ns: &str, mac: &str) -> Result<OvsInfo> {
        let rundir = self.workdir.join(format!("ovs-{switch}"));
        std::fs::create_dir_all(&rundir)
            .map_err(|e| LabError::io(format!("creating {}", rundir.display()), e))?;
        let d = rundir.display().to_string();
        let db_file = format!("{d}/conf.db");
        run(&["ovsdb-tool", "create", &db_file, SCHEMA])?;
        let sock = format!("{d}/db.sock");
        let info = OvsInfo {
            db: format!("unix:{sock}"),
            ofctl_target: format!("unix:{d}/{BRIDGE}.mgmt"),
            vswitchd_ctl: format!("{d}/ovs-vswitchd.ctl"),
            rundir: rundir.clone(),
        };
        let env = |c: &mut std::process::Command| {
            c.env("OVS_RUNDIR", &rundir)
                .env("OVS_LOGDIR", &rundir)
                .env("OVS_DBDIR", &rundir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        };
        let remote = format!("--remote=punix:{sock}");
        let server = self.spawn_with(
            ns,
            &[
                "ovsdb-server",
                &db_file,
                &remote,
                &format!("--unixctl={d}/ovsdb-server.ctl"),
                &format!("--log-file={d}/ovsdb-server.log"),
                "-vconsole:off",
            ],
            env,
        )?;
        self.daemons.push(server);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match run(&[
                "ovs-vsctl",
                &format!("--db={}", info.db),
                "--timeout=2",
                "--no-wait",
                "init",
            ]) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(LabError::Timeout(format!(
                        "ovsdb-server for switch {switch} did not answer: {e}"
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let vswitchd = self.spawn_with(
            ns,
            &[
                "ovs-vswitchd",
                &info.db,
                &format!("--unixctl={}", info.vswitchd_ctl),
                &format!("--log-file={d}/ovs-vswitchd.log"),
                "-vconsole:off",
            ],
            env,
        )?;
        self.daemons.push(vswitchd);
        let hw = format!("other-config:hwaddr=\"{mac}\"");
        run(&[
            "ovs-vsctl",
            &format!("--db={}", info.db),
            "--timeout=20",
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "protocols=OpenFlow13",
            "fail_mode=secure",
            &hw,
        ])?;
        run(&[
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "add-flow",
            &info.ofctl_target,
            "priority=0,actions=NORMAL",
        ])?;
        Ok(info)
    }

    fn ovs_of(&self, switch: &str) -> Result<&OvsInfo> {
        self.try_switch(switch)?.ovs.as_ref().ok_or_else(|| {
            LabError::Unsupported(format!(
                "switch `{switch}` is a Linux bridge, not an OpenFlow (OVS) switch"
            ))
        })
    }

    /// Run `ovs-vsctl --db=<switch's db> ARGS`.
    pub fn ovs_vsctl(&self, switch: &str, args: &[&str]) -> Result<Output> {
        let db = format!("--db={}", self.ovs_of(switch)?.db);
        let mut v = vec!["ovs-vsctl", db.as_str(), "--timeout=20"];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Run `ovs-ofctl -O OpenFlow13 COMMAND <switch's br0> ARGS`.
    pub fn ovs_ofctl(&self, switch: &str, command: &str, args: &[&str]) -> Result<Output> {
        let target = self.ovs_of(switch)?.ofctl_target.clone();
        let mut v = vec!["ovs-ofctl", "-O", "OpenFlow13", command, target.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Point the switch's `br0` at an OpenFlow controller, e.g. `tcp:127.0.0.1:6653`
    /// (ovs-vswitchd connects out from the switch namespace, so 127.0.0.1 is that
    /// namespace's loopback) or `unix:/path` (no namespace involved).
    pub fn ovs_set_controller(&self, switch: &str, target: &str) -> Result<()> {
        self.ovs_vsctl(switch, &["set-controller", BRIDGE, target])?;
        Ok(())
    }

    /// Add interface `port` (already in the switch namespace) to `br0`; returns its
    /// OpenFlow port number.
    pub(crate) fn ovs_add_port(&self, switch: &str, port: &str) -> Result<u32> {
        self.ovs_vsctl(switch, &["add-port", BRIDGE, port])?;
        // ovs-vsctl waits until ovs-vswitchd has applied the change, but the OpenFlow
        // port number can still read `[]` or -1 while the interface is being opened:
        // wait for a real number.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ovs_vsctl(switch, &["get", "Interface", port, "ofport"])?;
            let text = cmd::stdout(&out);
            if let Some(n) = text
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
            {
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!(
                    "ofport of {port} on {switch} is still `{}` after 10 s (see {}/ovs-vswitchd.log)",
                    text.trim(),
                    self.ovs_of(switch)?.rundir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// MACs in an OVS switch's learning table (`ovs-appctl fdb/show`).
    pub(crate) fn ovs_fdb_macs(&self, switch: &str) -> Result<BTreeSet<String>> {
        let ctl = self.ovs_of(switch)?.vswitchd_ctl.clone();
        let out = run(&["ovs-appctl", "-t", &ctl, "fdb/show", BRIDGE])?;
        Ok(cmd::stdout(&out)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_lowercase))
            .collect())
    }

    /// Install a static group on an OVS switch: group (type all) with one bucket per
    /// port, and flow `priority=100,ipv6,ipv6_dst=GROUP actions=group:ID`.
    pub(crate) fn ovs_static_group(
        &self,
        switch: &str,
        group: Ipv6Addr,
        ports: &[String],
    ) -> Result<()> {
        let sw = self.try_switch(switch)?;
        let mut buckets = Vec::new();
        for p in ports {
            let of = sw
                .ports
                .iter()
                .find(|x| &x.name == p)
                .and_then(|x| x.ofport)
                .ok_or_else(|| LabError::Parse(format!("ofport of {p} on {switch}")))?;
            buckets.push(format!("bucket=output:{of}"));
        }
        let id = self
            .ovs_group_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spec = format!("group_id={id},type=all,{}", buckets.join(","));
        self.ovs_ofctl(switch, "add-group", &[&spec])?;
        let flow = match group.to_ipv4_mapped() {
            Some(v4) => format!("priority=100,ip,nw_dst={v4},actions=group:{id}"),
            None => format!("priority=100,ipv6,ipv6_dst={group},actions=group:{id}"),
        };
        self.ovs_ofctl(switch, "add-flow", &[&flow])?;
        Ok(())
    }
}
