//! The private Open vSwitch lab of the OpenFlow backend tests (shared by
//! `lab_openflow.rs` and `lab_openflow_ipv4.rs`): one switch namespace
//! running ovsdb-server and ovs-vswitchd, host namespaces on veths.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use subcast_agent::backend::openflow::{OpenFlow, OpenflowConfig};

pub static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn enabled() -> bool {
    let tcpdump = ["/usr/sbin/tcpdump", "/usr/bin/tcpdump"]
        .iter()
        .any(|p| Path::new(p).exists());
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        tcpdump || !required,
        "{}=1 but tcpdump is not installed (apt-get install tcpdump)",
        labs::REQUIRE_ENV
    );
    // ovs_available() fails by itself under SUBCAST_LABS_REQUIRED=1.
    let ok = labs::lab_tests_enabled() && labs::ovs_available() && tcpdump;
    if !ok {
        eprintln!("skipping OpenFlow lab test: needs root, openvswitch-switch and tcpdump");
    }
    ok
}

pub fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .env("OVS_SYSCONFDIR", dir)
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private OVS bridge in its own namespace with `n` hosts. Dropping it stops the
/// daemons (by the PIDs in their pidfiles) and deletes the namespaces.
pub struct OvsLab {
    pub dir: PathBuf,
    pub switch_ns: String,
    pub hosts: Vec<String>,
}

impl OvsLab {
    pub fn new(n: usize) -> OvsLab {
        let id = format!(
            "of{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("subcast-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = OvsLab {
            dir,
            switch_ns: format!("{id}-s"),
            hosts: (1..=n).map(|i| format!("{id}-h{i}")).collect(),
        };
        let d = lab.dir.clone();
        let s = lab.switch_ns.clone();
        run(&d, &["ip", "netns", "add", &s]);
        run(&d, &["ip", "-n", &s, "link", "set", "lo", "up"]);
        for (i, h) in lab.hosts.iter().enumerate() {
            let i = i + 1;
            run(&d, &["ip", "netns", "add", h]);
            let sysctl = [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ];
            for kv in sysctl {
                run(&d, &["ip", "netns", "exec", h, "sysctl", "-qw", kv]);
            }
            run(&d, &["ip", "-n", h, "link", "set", "lo", "up"]);
            let p = format!("p{i}");
            run(
                &d,
                &[
                    "ip", "-n", &s, "link", "add", &p, "type", "veth", "peer", "name", "eth0",
                    "netns", h,
                ],
            );
            let mac = format!("02:5c:00:00:00:{i:02x}");
            run(
                &d,
                &["ip", "-n", h, "link", "set", "eth0", "address", &mac, "up"],
            );
            let addr = format!("fd00:5c::{i:x}/64");
            run(
                &d,
                &["ip", "-n", h, "addr", "add", &addr, "dev", "eth0", "nodad"],
            );
            run(
                &d,
                &[
                    "ip", "netns", "exec", h, "ethtool", "-K", "eth0", "tx", "off",
                ],
            );
            run(&d, &["ip", "-n", &s, "link", "set", &p, "up"]);
        }
        let db = d.join("conf.db");
        let db = db.to_str().expect("utf-8 path");
        let sock = format!("unix:{}", d.join("db.sock").display());
        let remote = format!("--remote=p{sock}");
        run(
            &d,
            &[
                "ovsdb-tool",
                "create",
                db,
                "/usr/share/openvswitch/vswitch.ovsschema",
            ],
        );
        run(
            &d,
            &[
                "ip",
                "netns",
                "exec",
                &s,
                "ovsdb-server",
                db,
                &remote,
                "--pidfile",
                "--detach",
                "--log-file",
            ],
        );
        run(&d, &["ovs-vsctl", "--no-wait", "init"]);
        lab.start_vswitchd();
        let mut add = vec![
            "ovs-vsctl".to_string(),
            "add-br".into(),
            "br0".into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            "br0".into(),
            "datapath_type=netdev".into(),
            "protocols=OpenFlow13".into(),
            "fail_mode=secure".into(),
        ];
        for i in 1..=n {
            add.extend(["--", "add-port", "br0"].map(String::from));
            add.push(format!("p{i}"));
            add.extend(["--", "set", "interface"].map(String::from));
            add.push(format!("p{i}"));
            add.push(format!("ofport_request={i}"));
        }
        let add: Vec<&str> = add.iter().map(String::as_str).collect();
        run(&d, &add);
        lab
    }

    /// Starts ovs-vswitchd in the switch namespace on the lab's database (detached,
    /// pidfile and log file in the lab directory).
    pub fn start_vswitchd(&self) {
        let sock = format!("unix:{}", self.dir.join("db.sock").display());
        run(
            &self.dir,
            &[
                "ip",
                "netns",
                "exec",
                &self.switch_ns,
                "ovs-vswitchd",
                &sock,
                "--pidfile",
                "--detach",
                "--log-file",
            ],
        );
    }

    /// Stops ovs-vswitchd (SIGTERM to the PID in its pidfile) and waits until it has
    /// exited. The userspace datapath loses every flow and group.
    pub fn stop_vswitchd(&self) {
        let pid = std::fs::read_to_string(self.dir.join("ovs-vswitchd.pid"))
            .expect("ovs-vswitchd pidfile");
        let pid = pid.trim().to_string();
        run(&self.dir, &["kill", "-TERM", &pid]);
        // Gone, or a zombie nobody has reaped yet.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|st| st.rsplit(')').next().is_some_and(|r| !r.starts_with(" Z")))
        };
        let t0 = Instant::now();
        while alive() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "ovs-vswitchd {pid} did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn ovs(&self, args: &[&str]) -> String {
        run(&self.dir, args)
    }

    /// Points the bridge at a controller listening on the switch's 127.0.0.1:port.
    pub fn set_controller(&self, port: u16) {
        let target = format!("tcp:127.0.0.1:{port}");
        self.ovs(&["ovs-vsctl", "set-controller", "br0", &target]);
        self.ovs(&[
            "ovs-vsctl",
            "set",
            "controller",
            "br0",
            "connection-mode=out-of-band",
            "max_backoff=1000",
        ]);
    }

    /// A listener on 127.0.0.1 inside the switch namespace.
    pub fn listener(&self, port: u16) -> std::net::TcpListener {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        labs::netns::in_netns(&self.switch_ns, move || {
            let t0 = Instant::now();
            loop {
                match std::net::TcpListener::bind(addr) {
                    Ok(l) => return l,
                    Err(e) if t0.elapsed() < Duration::from_secs(5) => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("bind {addr} in switch netns: {e}"),
                }
            }
        })
        .expect("enter switch netns")
    }

    /// One tcpdump per host on its eth0 (incoming only) writing to a pcap
    /// file under the lab's directory, each returned once it says
    /// "listening on": what is sent after this call is captured.
    pub fn start_captures(&self, tag: &str, filter: &str) -> Vec<(Child, PathBuf)> {
        self.hosts
            .iter()
            .map(|h| {
                let file = self.dir.join(format!(
                    "{h}-{tag}-{}.pcap",
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                let mut child = Command::new("ip")
                    .args([
                        "netns", "exec", h, "tcpdump", "-i", "eth0", "-Q", "in", "-n", "-U",
                    ])
                    .args(["--immediate-mode", "-w"])
                    .arg(&file)
                    .arg(filter)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("tcpdump");
                let mut err = BufReader::new(child.stderr.take().expect("stderr"));
                let mut line = String::new();
                while !line.contains("listening on") {
                    line.clear();
                    assert!(
                        err.read_line(&mut line).expect("tcpdump stderr") > 0,
                        "tcpdump in {h} exited before capturing"
                    );
                }
                std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
                (child, file)
            })
            .collect()
    }

    pub fn host_ip(i: usize) -> Ipv6Addr {
        format!("fd00:5c::{i:x}").parse().expect("address")
    }

    /// Pings between all hosts so the learning switch sees every MAC.
    pub fn ping_all(&self) {
        for (i, h) in self.hosts.iter().enumerate() {
            for j in 1..=self.hosts.len() {
                if j != i + 1 {
                    let dst = Self::host_ip(j).to_string();
                    run(
                        &self.dir,
                        &[
                            "ip", "netns", "exec", h, "ping", "-6", "-c", "1", "-W", "2", &dst,
                        ],
                    );
                }
            }
        }
    }

    /// Sends `n` datagrams from host `from` (1-based) to `group` and returns how
    /// many each host received. Every host captures (tcpdump, inbound) from
    /// the moment it says "listening on"; after the datagrams the sender sends
    /// one sentinel to all nodes (ff02::1, flooded by the pipeline along the
    /// same paths), and each capture is stopped once its file holds the
    /// sentinel: what was sent before it has been seen.
    pub fn deliver(&self, from: usize, group: Ipv6Addr, n: usize) -> Vec<u64> {
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        let filter = format!("udp and (dst host {group} or dst host {all_nodes})");
        let caps = self.start_captures("v6", &filter);
        self.send(from, group, n, 5000);
        self.send(from, all_nodes, 1, 5999);
        let sentinel = |f: &Path| {
            let data = std::fs::read(f).unwrap_or_default();
            labs::capture::pcap_records(&data).is_some_and(|mut r| {
                r.any(|r| labs::capture::udp6(r.frame).is_some_and(|u| u.dst == all_nodes))
            })
        };
        let t0 = Instant::now();
        for (i, (_, f)) in caps.iter().enumerate() {
            while i + 1 != from && !sentinel(f) {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "host {} did not get the sentinel",
                    i + 1
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        caps.into_iter()
            .map(|(mut c, f)| {
                let _ = Command::new("kill")
                    .args(["-INT", &c.id().to_string()])
                    .status();
                let _ = c.wait();
                let data = std::fs::read(&f).unwrap_or_default();
                labs::capture::pcap_records(&data).map_or(0, |r| {
                    r.filter(|r| labs::capture::udp6(r.frame).is_some_and(|u| u.dst == group))
                        .count() as u64
                })
            })
            .collect()
    }

    /// Sends `n` UDP datagrams from host `i` (1-based) to `[group]:port`, paced
    /// 2 ms apart (the userspace datapath drops bursts).
    pub fn send(&self, i: usize, group: Ipv6Addr, n: usize, port: u16) {
        labs::netns::in_netns(&self.hosts[i - 1], move || {
            let s = std::net::UdpSocket::bind("[::]:0").expect("bind");
            if group.segments()[0] & 0x000f <= 2 {
                let idx = labs::netns::if_index("eth0").expect("eth0");
                socket2::SockRef::from(&s)
                    .set_multicast_if_v6(idx)
                    .expect("multicast if");
            }
            for k in 0..n {
                if k > 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                s.send_to(&[0x5c; 64], (group, port)).expect("send");
            }
        })
        .expect("enter host netns");
    }
}

impl Drop for OvsLab {
    fn drop(&mut self) {
        for name in ["ovs-vswitchd", "ovsdb-server"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        // Wait until they are gone before deleting their namespace.
        for name in ["ovs-vswitchd", "ovsdb-server"] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))) else {
                continue;
            };
            let t0 = Instant::now();
            while Path::new(&format!("/proc/{}", pid.trim())).exists()
                && t0.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for ns in self.hosts.iter().chain([&self.switch_ns]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn config(flood: bool) -> OpenflowConfig {
    OpenflowConfig {
        flood_unknown_multicast: flood,
        ..OpenflowConfig::default()
    }
}

pub const PORT: u16 = 16653;

pub async fn connect(lab: &OvsLab, port: u16, flood: bool) -> OpenFlow {
    lab.set_controller(port);
    let of = OpenFlow::with_listener(lab.listener(port), config(flood)).expect("listen");
    of.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch connects");
    of
}
