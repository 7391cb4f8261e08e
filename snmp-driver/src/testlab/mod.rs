//! Test support (feature `testing`, not for production): one netns with a Linux bridge
//! (the switch), host netns on veths ([`Lab`]), and a real net-snmp `snmpd` whose
//! Q-BRIDGE-MIB is served by `subcast-qbridge-passpersist` ([`TestSnmpd`], usable on its
//! own for any bridge in any namespace). Everything is removed on drop, also when the test
//! panics; processes end by their PID. Needs root, iproute2, snmpd, snmp, tcpdump and socat.
//! [`Lab`] setup failures panic (it runs in tests); [`TestSnmpd`] returns errors.
//!
//! Used by this crate's tests and bench and by `subcast-agent`'s SNMP backend tests; other
//! crates enable it with `subcast-snmp = { workspace = true, features = ["testing"] }` in
//! `[dev-dependencies]` (or `[dependencies]` for a lab binary).

mod snmpd;

pub use snmpd::{
    DEFAULT_COMMUNITY, DEFAULT_NETNS_PORT, DEFAULT_READY_TIMEOUT, SnmpdError, TestSnmpd,
    TestSnmpdBuilder, V3User,
};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The read-write v2c community of the lab's snmpd.
pub const COMMUNITY_RW: &str = DEFAULT_COMMUNITY;
/// The v3 user (authPriv SHA/AES).
pub const V3_USER: &str = "subcastv3";
/// Its auth password.
pub const V3_AUTH: &str = "auth-pass-123";
/// Its privacy password.
pub const V3_PRIV: &str = "priv-pass-456";
/// The `--ipv6-group-prefix` of the handler.
pub const GROUP_PREFIX: &str = "ff3e::/96";
/// The `--ipv4-group-prefix` of the handler.
pub const GROUP_PREFIX_V4: &str = "239.92.0.0/16";

/// Runs a command; panics with its stderr if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failure (cleanup).
fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Panics unless running as root.
pub fn require_root() {
    let uid = sh(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "these tests create network namespaces and need root"
    );
}

/// A host attached to the bridge.
#[derive(Debug, Clone)]
pub struct Host {
    pub netns: String,
    pub mac: String,
    /// Bridge-side veth name (inside the bridge netns).
    pub bridge_if: String,
}

/// The `subcast-qbridge-passpersist` binary for tests of other crates: the path in
/// `SUBCAST_QBRIDGE_PASSPERSIST` if set, else it is built with `$CARGO build -p subcast-snmp`
/// into the target directory of the running test executable.
pub fn passpersist_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SUBCAST_QBRIDGE_PASSPERSIST") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "subcast-snmp",
        "--bin",
        "subcast-qbridge-passpersist",
    ])
    .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("run cargo build for the pass_persist handler");
    assert!(
        status.success(),
        "cargo build of subcast-qbridge-passpersist failed"
    );
    let bin = profile_dir.join("subcast-qbridge-passpersist");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// A bridge, hosts and (after [`Lab::start_snmpd`]) an snmpd.
#[derive(Debug)]
pub struct Lab {
    pub id: String,
    pub bridge_ns: String,
    pub hosts: Vec<Host>,
    pub dir: PathBuf,
    pub port: u16,
    snmpd: Option<TestSnmpd>,
    captures: Vec<Child>,
}

impl Lab {
    /// A bridge (snooping on, querier enabled: see [`Lab::wait_querier`]) and `n_hosts`
    /// hosts `fd00::i/64` with distinct MACs, each on its own bridge port `v{i}`.
    pub fn new(n_hosts: usize) -> Lab {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("sxs{}n{}", std::process::id(), n);
        let dir = std::env::temp_dir().join(format!("subcast-snmp-{id}"));
        std::fs::create_dir_all(dir.join("persist")).expect("temp dir");
        let mut lab = Lab {
            bridge_ns: format!("{id}b"),
            hosts: Vec::new(),
            dir,
            port: 0,
            snmpd: None,
            captures: Vec::new(),
            id,
        };
        let b = lab.bridge_ns.clone();
        new_netns(&b);
        sh(&[
            "ip",
            "-n",
            &b,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "1",
            "mcast_querier",
            "0",
            "mcast_query_response_interval",
            "100",
        ]);
        for i in 1..=n_hosts {
            let h = format!("{}h{i}", lab.id);
            new_netns(&h);
            lab.hosts.push(Host {
                netns: h.clone(),
                mac: format!(
                    "02:00:00:{:02x}:{:02x}:{i:02x}",
                    n % 256,
                    std::process::id() % 256
                ),
                bridge_if: format!("v{i}"),
            });
            let host = lab.hosts.last().expect("just pushed").clone();
            sh(&[
                "ip",
                "-n",
                &b,
                "link",
                "add",
                &host.bridge_if,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &h,
            ]);
            sh(&["ip", "-n", &h, "link", "set", "eth0", "address", &host.mac]);
            let addr = format!("fd00::{i}/64");
            sh(&["ip", "-n", &h, "addr", "add", &addr, "dev", "eth0", "nodad"]);
            sh(&["ip", "-n", &h, "link", "set", "eth0", "up"]);
            sh(&[
                "ip",
                "-n",
                &b,
                "link",
                "set",
                &host.bridge_if,
                "master",
                "br0",
            ]);
            sh(&["ip", "-n", &b, "link", "set", &host.bridge_if, "up"]);
        }
        sh(&["ip", "-n", &b, "link", "set", "br0", "up"]);
        sh(&[
            "ip",
            "-n",
            &b,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_querier",
            "1",
        ]);
        // Let the bridge learn every host's MAC.
        for h in &lab.hosts {
            sh_quiet(&[
                "ip", "netns", "exec", &h.netns, "ping", "-6", "-c", "1", "-W", "1", "-I", "eth0",
                "ff02::1",
            ]);
        }
        lab
    }

    /// The bridge's own port number of a host's veth (ground truth from sysfs).
    pub fn port_no(&self, host: &Host) -> u16 {
        let path = format!("/sys/class/net/br0/brif/{}/port_no", host.bridge_if);
        let text = sh(&["ip", "netns", "exec", &self.bridge_ns, "cat", &path]);
        let t = text.trim().trim_start_matches("0x");
        u16::from_str_radix(t, 16).expect("port_no is hex")
    }

    /// ifindex of a host's bridge-side veth.
    pub fn ifindex(&self, host: &Host) -> u32 {
        let path = format!("/sys/class/net/{}/ifindex", host.bridge_if);
        sh(&["ip", "netns", "exec", &self.bridge_ns, "cat", &path])
            .trim()
            .parse()
            .expect("ifindex")
    }

    /// Permanent MDB entries (group, port) in the bridge.
    pub fn static_mdb(&self) -> Vec<(String, String)> {
        let text = sh(&[
            "bridge",
            "-n",
            &self.bridge_ns,
            "-j",
            "mdb",
            "show",
            "dev",
            "br0",
        ]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("bridge -j mdb json");
        let mut out = Vec::new();
        for dump in v.as_array().into_iter().flatten() {
            for e in dump["mdb"].as_array().into_iter().flatten() {
                if e["state"] == "permanent" {
                    out.push((
                        e["grp"].as_str().unwrap_or("").to_string(),
                        e["port"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// Starts snmpd on a free host loopback port with the v2c community [`COMMUNITY_RW`]
    /// and the v3 user [`V3_USER`], serving this lab's bridge through the handler binary
    /// `handler` (see [`passpersist_binary`]), which enters the bridge's namespace. Returns
    /// once snmpd answers through the handler.
    pub fn start_snmpd(&mut self, handler: &Path) {
        let snmpd = TestSnmpd::builder(handler, &self.dir)
            .netns(&self.bridge_ns)
            .snmpd_in_netns(false)
            .community(COMMUNITY_RW)
            .v3(V3User::new(V3_USER, V3_AUTH, V3_PRIV))
            .group_prefix(GROUP_PREFIX)
            .ipv4_group_prefix(GROUP_PREFIX_V4)
            .start()
            .unwrap_or_else(|e| panic!("test switch: {e}"));
        self.port = snmpd.address().port();
        self.snmpd = Some(snmpd);
    }

    /// snmpd's PID.
    pub fn snmpd_pid(&self) -> Option<u32> {
        self.snmpd.as_ref().and_then(TestSnmpd::pid)
    }

    /// Sends `sig` (e.g. "STOP", "KILL") to snmpd by its PID.
    pub fn signal_snmpd(&self, sig: &str) {
        let snmpd = self.snmpd.as_ref().expect("snmpd was started");
        snmpd
            .signal(sig)
            .unwrap_or_else(|e| panic!("signal snmpd: {e}"));
    }

    /// Stops snmpd (SIGKILL by PID) and reaps it.
    pub fn kill_snmpd(&mut self) {
        if let Some(mut s) = self.snmpd.take() {
            s.kill();
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts tcpdump on a host's eth0 for UDP to groups under ff3e::/16; returns a capture
    /// file. Waits until tcpdump listens.
    pub fn capture(&mut self, host: &Host) -> PathBuf {
        let file = self.dir.join(format!("{}.pcap", host.netns));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.netns, "tcpdump", "-i", "eth0", "-n"])
            .args(["--immediate-mode", "-U", "-w"])
            .arg(&file)
            .args(["ip6 and udp and dst net ff3e::/16"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        self.captures.push(child);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start listening");
        file
    }

    /// Datagrams in a capture file sent to UDP port `port`.
    pub fn count(&self, file: &PathBuf, port: u16) -> usize {
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(file)
            .arg(format!("udp dst port {port}"))
            .stderr(Stdio::null())
            .output()
            .expect("tcpdump -r");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Sends `n` UDP datagrams from `host` to `[group]:port`.
    pub fn send(&self, host: &Host, group: &str, port: u16, n: usize) {
        let target = format!("UDP6-SENDTO:[{group}]:{port}");
        for i in 0..n {
            let mut child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &host.netns,
                    "socat",
                    "-u",
                    "STDIN",
                    &target,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("socat");
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                let _ = writeln!(stdin, "subcast test datagram {i}");
            }
            let _ = child.wait();
        }
    }

    /// Waits until the querier is active: a datagram to an unregistered group reaches no
    /// receiver. `files` are running captures of the receivers.
    pub fn wait_querier(&self, sender: &Host, files: &[PathBuf]) {
        let t0 = Instant::now();
        for probe_port in 40000u16.. {
            self.send(sender, "ff3e::dead:beef", probe_port, 1);
            std::thread::sleep(Duration::from_millis(300));
            if files.iter().all(|f| self.count(f, probe_port) == 0) {
                return;
            }
            // ~3 s on an idle machine; on a loaded one (CI beside other
            // work) it has taken over 20 s.
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "unregistered multicast still floods after 60 s: the bridge querier never became active"
            );
        }
    }
}

fn new_netns(name: &str) {
    sh(&["ip", "netns", "add", name]);
    sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
    sh(&[
        "ip",
        "netns",
        "exec",
        name,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ]);
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut c in self.captures.drain(..) {
            sh_quiet(&["kill", "-INT", &c.id().to_string()]);
            let _ = c.wait();
        }
        self.kill_snmpd();
        for h in &self.hosts {
            sh_quiet(&["ip", "netns", "del", &h.netns]);
        }
        sh_quiet(&["ip", "netns", "del", &self.bridge_ns]);
        if std::thread::panicking() {
            eprintln!(
                "lab {} failed; logs kept in {}",
                self.id,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
