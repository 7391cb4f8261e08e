//! The subcast daemons running in a lab: one controller, one agent per switch and
//! (for puts) one storage node per negotiating-group member.
//!
//! Placement: the controller runs in the namespace of the first switch (name order),
//! like a controller on the management plane of that switch; it listens for agents
//! and storage nodes at that switch's management address `fd00:5c::1:N` (in band:
//! every host and switch reaches it over the lab's bridges) and serves its HTTP API
//! on `[::1]:8411` inside that namespace (the lab talks to it from there). Each agent
//! runs in its switch's namespace and drives `br0` with the switch's backend
//! (`linux-bridge`; `openflow` for OVS; `snmp` against an snmpd started there first,
//! see `snmp.rs`) and listens at the switch's management address, port 7410. Storage nodes run in host
//! namespaces on `eth0`, UDP port 7412. Keys and the admin token are random per run,
//! written `chmod 600` into the lab's scratch directory with every config and log.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use labs::{ChildGuard, Lab};
use serde_json::Value;

use crate::bins::Binaries;
pub use crate::stack_config::*;

/// Running daemons. Dropping it ends them (by PID).
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    /// The family and ports of these daemons.
    pub flavor: Flavor,
    /// Switch whose namespace holds the controller.
    pub ctl_switch: String,
    pub ctl_netns: String,
    pub ctl_ip: IpAddr,
    /// Where the controller's HTTP API listens, inside `ctl_netns`.
    api: SocketAddr,
    token: String,
    /// The backend each agent says it drives (its HELLO, from `GET /v1/agents`).
    pub backends: BTreeMap<String, String>,
    // Field order = drop order: nodes, agents, snmpd, then the controller.
    pub nodes: BTreeMap<String, ChildGuard>,
    pub agents: BTreeMap<String, ChildGuard>,
    /// snmpd of every `backend: snmp` switch.
    pub snmp: BTreeMap<String, crate::snmp::SnmpSwitch>,
    controller: ChildGuard,
}

pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn secret(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    Ok(())
}

/// A log file for a daemon, twice: for its stdout and its stderr.
fn log_file(dir: &Path, name: &str) -> Result<(std::fs::File, std::fs::File)> {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok((f.try_clone()?, f))
}

/// Poll `f` every 50 ms until it is true or `within` passes.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if t0.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Stack {
    /// Start the controller and one agent per switch; wait until every agent is up.
    pub fn start(lab: &Lab, bins: &Binaries) -> Result<Stack> {
        Self::start_with(lab, bins, &CtlTweaks::default())
    }

    /// [`Stack::start`] with a changed controller config.
    pub fn start_with(lab: &Lab, bins: &Binaries, tweaks: &CtlTweaks) -> Result<Stack> {
        Self::start_flavor(lab, bins, tweaks, Flavor::of(lab))
    }

    /// A stack of family and ports `fl`: the lab's own ([`Flavor::of`]) keeps its
    /// files in the lab's scratch directory, another (the IPv4 stack of a dual lab)
    /// in its subdirectory `ipv4/`.
    pub fn start_flavor(
        lab: &Lab,
        bins: &Binaries,
        tweaks: &CtlTweaks,
        fl: Flavor,
    ) -> Result<Stack> {
        let mut dir = lab.workdir().to_path_buf();
        if fl.offset != 0 {
            dir = dir.join(fl.name());
            std::fs::create_dir_all(&dir)?;
        }
        // The first Linux bridge (name order) hosts the controller: storage nodes
        // reach it in band at that bridge's management address.
        let (ctl_switch, sw) = lab
            .switches()
            .iter()
            .find(|(n, _)| !is_ovs(lab, n))
            .or_else(|| lab.switches().iter().next())
            .ok_or_else(|| anyhow!("the topology has no switch"))?;
        let ctl_ip = fl.mgmt(sw);
        let (ctl_switch, ctl_netns) = (ctl_switch.clone(), sw.netns.clone());
        let api = SocketAddr::new(fl.loopback(), fl.api_port());
        for k in ["ctl.key", "agent.key", "nodes.key", "cluster.key"] {
            secret(&dir.join(k), &random_hex(32)?)?;
        }
        let token = random_hex(16)?;
        secret(&dir.join("admin.token"), &token)?;
        let cfg = dir.join("controller.yaml");
        let addrs = agent_addrs(lab, fl, &ctl_switch)?;
        std::fs::write(&cfg, controller_yaml(lab, fl, &addrs, tweaks))?;
        let check = std::process::Command::new(&bins.controller)
            .arg("check-config")
            .arg(&cfg)
            .output()
            .with_context(|| format!("running {}", bins.controller.display()))?;
        if !check.status.success() {
            bail!(
                "the controller rejects the lab's config {}: {}",
                cfg.display(),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let ctl = bins.controller.display().to_string();
        let cfg_s = cfg.display().to_string();
        let (log_out, log) = log_file(&dir, "controller.log")?;
        let mut controller =
            lab.spawn_with(&ctl_netns, &[&ctl, "serve", "--config", &cfg_s], |c| {
                c.stdout(log_out).stderr(log);
            })?;
        let ns = ctl_netns.clone();
        wait_for("the controller's HTTP API", Duration::from_secs(15), || {
            if controller.has_exited() {
                bail!(
                    "the controller exited:\n{}",
                    tail(&dir.join("controller.log"))
                );
            }
            let ns = ns.clone();
            Ok(labs::netns::in_netns(&ns, move || {
                std::net::TcpStream::connect(api).is_ok()
            })?)
        })?;
        // SNMP switches answer through their handler before their agents start.
        let snmp = if fl.offset == 0 {
            crate::snmp::start_all(lab, bins.snmp_handler.as_deref(), &dir)?
        } else {
            BTreeMap::new()
        };
        let mut agents = BTreeMap::new();
        let agent = bins.agent.display().to_string();
        // Agents on OVS switches first: until they run and have learned where every
        // host and bridge is, in-band traffic through their switches (the other
        // agents' HELLOs) is not forwarded.
        let ids: BTreeMap<&String, usize> = lab
            .switches()
            .keys()
            .enumerate()
            .map(|(i, n)| (n, i + 1))
            .collect();
        let (ovs, rest): (Vec<&String>, Vec<&String>) =
            lab.switches().keys().partition(|n| is_ovs(lab, n));
        for (pass, names) in [ovs, rest].into_iter().enumerate() {
            for name in names {
                let path = dir.join(format!("agent-{name}.yaml"));
                let yaml = agent_yaml(lab, fl, &dir, name, ids[name], &addrs[name], snmp.get(name));
                std::fs::write(&path, yaml)?;
                let (log_out, log) = log_file(&dir, &format!("agent-{name}.log"))?;
                let p = path.display().to_string();
                let child = lab.spawn_with(
                    &lab.switch(name).netns,
                    &[&agent, "run", "--config", &p],
                    |c| {
                        c.stdout(log_out).stderr(log);
                    },
                )?;
                agents.insert(name.clone(), child);
                if is_ovs(lab, name) {
                    // Point OVS at the agent once it listens: a connection refused
                    // would put OVS into its reconnect backoff (1 s, 2 s, ...).
                    let netns = lab.switch(name).netns.clone();
                    let port = format!(
                        "sport = :{}",
                        OPENFLOW_ADDR.rsplit(':').next().unwrap_or("6653")
                    );
                    let log = dir.join(format!("agent-{name}.log"));
                    wait_for(
                        &format!("the OpenFlow agent of {name} to listen"),
                        Duration::from_secs(15),
                        || {
                            if agents.get_mut(name).is_some_and(|a| a.has_exited()) {
                                bail!("agent of switch {name} exited:\n{}", tail(&log));
                            }
                            let out = lab.exec(&netns, &["ss", "-Hltn", &port])?;
                            Ok(!out.stdout.is_empty())
                        },
                    )?;
                    lab.ovs_set_controller(name, &format!("tcp:{OPENFLOW_ADDR}"))?;
                }
            }
            if pass == 0 && fl.offset == 0 {
                teach_openflow(lab)?;
            }
        }
        let mut stack = Stack {
            dir,
            flavor: fl,
            ctl_switch,
            ctl_netns,
            ctl_ip,
            api,
            token,
            backends: BTreeMap::new(),
            nodes: BTreeMap::new(),
            agents,
            snmp,
            controller,
        };
        let n = lab.switches().len();
        wait_for(&format!("{n} agents up"), Duration::from_secs(20), || {
            for (name, a) in stack.agents.iter_mut() {
                if a.has_exited() {
                    bail!(
                        "agent of switch {name} exited:\n{}",
                        tail(&stack.dir.join(format!("agent-{name}.log")))
                    );
                }
            }
            let (s, v) = stack.http(lab, "GET", "/v1/agents", None)?;
            let up = s == 200
                && v.as_array()
                    .is_some_and(|a| a.len() == n && a.iter().all(|x| x["state"] == "up"));
            if up {
                stack.backends = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        Some((
                            a["name"].as_str()?.to_owned(),
                            a["backend"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
            }
            Ok(up)
        })?;
        Ok(stack)
    }

    /// Start a storage node on every negotiating-group member except `skip`, and wait
    /// until each listens on its UDP port.
    pub fn start_nodes(&mut self, lab: &Lab, bins: &Binaries, skip: &str) -> Result<()> {
        self.start_nodes_except(lab, bins, &[skip.to_string()])
    }

    /// [`Stack::start_nodes`] skipping every host in `skip`.
    pub fn start_nodes_except(
        &mut self,
        lab: &Lab,
        bins: &Binaries,
        skip: &[String],
    ) -> Result<()> {
        let mut hosts: Vec<String> = self
            .flavor
            .groups(lab)
            .into_iter()
            .flat_map(|(_, g, _)| g.members)
            .filter(|h| !skip.contains(h))
            .collect();
        hosts.sort();
        hosts.dedup();
        let node = bins.node.display().to_string();
        for h in &hosts {
            let info = lab.host(h);
            std::fs::create_dir_all(self.dir.join(format!("store-{h}")))?;
            let path = self.dir.join(format!("node-{h}.yaml"));
            std::fs::write(
                &path,
                node_yaml(
                    lab,
                    self.flavor,
                    &self.dir,
                    self.ctl_ip,
                    h,
                    Some(info.index),
                    &hosts,
                ),
            )?;
            let (log_out, log) = log_file(&self.dir, &format!("node-{h}.log"))?;
            let p = path.display().to_string();
            let child = lab.spawn_with(&info.netns, &[&node, "--config", &p, "serve"], |c| {
                c.stderr(log).stdout(log_out).env("SUBCAST_LOG", "warn");
            })?;
            self.nodes.insert(h.clone(), child);
        }
        for h in &hosts {
            let netns = lab.host(h).netns.clone();
            let port = format!("sport = :{}", self.flavor.node_port());
            wait_for(
                &format!("storage node on {h}"),
                Duration::from_secs(15),
                || {
                    if let Some(c) = self.nodes.get_mut(h)
                        && c.has_exited()
                    {
                        bail!(
                            "storage node on {h} exited:\n{}",
                            tail(&self.dir.join(format!("node-{h}.log")))
                        );
                    }
                    let out = lab.exec(&netns, &["ss", "-Hlun", &port])?;
                    Ok(!out.stdout.is_empty())
                },
            )?;
        }
        Ok(())
    }

    /// Write the client config for `host` (no `node:` section) and return its path.
    pub fn client_config(&self, lab: &Lab, host: &str) -> Result<PathBuf> {
        let path = self.dir.join(format!("client-{host}.yaml"));
        let serving: Vec<String> = self.nodes.keys().cloned().collect();
        std::fs::write(
            &path,
            node_yaml(
                lab,
                self.flavor,
                &self.dir,
                self.ctl_ip,
                host,
                None,
                &serving,
            ),
        )?;
        Ok(path)
    }

    /// One HTTP/1.0 request to the controller's API (from inside its namespace).
    pub fn http(
        &self,
        _lab: &Lab,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: controller\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let api = self.api;
        let raw = labs::netns::in_netns(&self.ctl_netns, move || {
            let mut s = std::net::TcpStream::connect(api)?;
            s.set_read_timeout(Some(Duration::from_secs(15)))?;
            s.write_all(req.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })?
        .with_context(|| format!("{method} {path} to the controller"))?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((
            status,
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        ))
    }

    /// The last lines of every daemon log (for error messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut names = vec!["controller.log".to_string()];
        names.extend(self.agents.keys().map(|s| format!("agent-{s}.log")));
        names.extend(self.nodes.keys().map(|h| format!("node-{h}.log")));
        for s in self.snmp.keys() {
            names.push(format!("snmpd-{s}/snmpd.log"));
            names.push(format!("snmpd-{s}/handler.log"));
        }
        for n in names {
            let t = tail(&self.dir.join(&n));
            if !t.trim().is_empty() {
                out += &format!("--- {n}\n{t}\n");
            }
        }
        out
    }

    /// (name, PID) of every daemon: `controller`, `agent-<SWITCH>`, `node-<HOST>`.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut v = vec![("controller".to_string(), self.controller.pid())];
        v.extend(
            self.agents
                .iter()
                .map(|(n, c)| (format!("agent-{n}"), c.pid())),
        );
        v.extend(
            self.nodes
                .iter()
                .map(|(h, c)| (format!("node-{h}"), c.pid())),
        );
        v
    }

    /// End every daemon now (nodes, agents, controller).
    pub fn stop(mut self) {
        self.nodes.clear();
        self.agents.clear();
        self.snmp.clear();
        self.controller
            .stop_with(nix_sigterm(), Duration::from_secs(2));
    }
}

fn nix_sigterm() -> nix::sys::signal::Signal {
    nix::sys::signal::Signal::SIGTERM
}

/// Last 20 lines of a file.
pub fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
