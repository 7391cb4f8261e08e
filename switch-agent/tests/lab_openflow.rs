//! The OpenFlow backend against a real, private Open vSwitch (userspace
//! datapath) in network namespaces this test creates: one switch namespace
//! running ovsdb-server and ovs-vswitchd, host namespaces on veths. The backend
//! listens inside the switch namespace on 127.0.0.1; receptions are counted with
//! tcpdump in each host namespace. Needs root and openvswitch-switch, tcpdump;
//! skipped otherwise, and failing instead under `SUBCAST_LABS_REQUIRED=1`.

use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use subcast_agent::backend::openflow::{OpenFlow, OpenflowConfig, SUBSET_GROUP_BASE};
use subcast_agent::backend::{Backend, BackendError, PortSet};
use subcast_agent::core::action::Change;
use subcast_proto::{MacAddr, Member};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn enabled() -> bool {
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

fn run(dir: &Path, args: &[&str]) -> String {
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
struct OvsLab {
    dir: PathBuf,
    switch_ns: String,
    hosts: Vec<String>,
}

impl OvsLab {
    fn new(n: usize) -> OvsLab {
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
    fn start_vswitchd(&self) {
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
    fn stop_vswitchd(&self) {
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

    fn ovs(&self, args: &[&str]) -> String {
        run(&self.dir, args)
    }

    /// Points the bridge at a controller listening on the switch's 127.0.0.1:port.
    fn set_controller(&self, port: u16) {
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
    fn listener(&self, port: u16) -> std::net::TcpListener {
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

    fn host_ip(i: usize) -> Ipv6Addr {
        format!("fd00:5c::{i:x}").parse().expect("address")
    }

    /// Pings between all hosts so the learning switch sees every MAC.
    fn ping_all(&self) {
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
    fn deliver(&self, from: usize, group: Ipv6Addr, n: usize) -> Vec<u64> {
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        let caps: Vec<(Child, PathBuf)> = self
            .hosts
            .iter()
            .map(|h| {
                let file = self.dir.join(format!(
                    "{h}-{}.pcap",
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                let filter = format!("udp and (dst host {group} or dst host {all_nodes})");
                let mut child = Command::new("ip")
                    .args([
                        "netns", "exec", h, "tcpdump", "-i", "eth0", "-Q", "in", "-n", "-U",
                    ])
                    .args(["--immediate-mode", "-w"])
                    .arg(&file)
                    .arg(&filter)
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
            .collect();
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
    fn send(&self, i: usize, group: Ipv6Addr, n: usize, port: u16) {
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

fn config(flood: bool) -> OpenflowConfig {
    OpenflowConfig {
        flood_unknown_multicast: flood,
        ..OpenflowConfig::default()
    }
}

const PORT: u16 = 16653;

async fn connect(lab: &OvsLab, port: u16, flood: bool) -> OpenFlow {
    lab.set_controller(port);
    let of = OpenFlow::with_listener(lab.listener(port), config(flood)).expect("listen");
    of.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch connects");
    of
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_subset_group_reaches_exactly_the_chosen_hosts() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT, true).await;
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    of.guard_range(range).await.unwrap();
    assert_eq!(of.port_count(), 3);
    assert_eq!(of.port_name(2), "p2");
    lab.ping_all();
    // Placement by learning: IPv6 and MAC members.
    let h2 = Member::Ipv6(OvsLab::host_ip(2));
    let h3 = Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, 3]));
    let p2 = of.port_toward(0, &h2).await.unwrap().expect("h2 learned");
    let p3 = of.port_toward(0, &h3).await.unwrap().expect("h3 learned");
    assert_eq!((p2, p3), (2, 3));
    let unknown = Member::Ipv6("fd00:5c::99".parse().unwrap());
    assert_eq!(of.port_toward(0, &unknown).await.unwrap(), None);

    let x: Ipv6Addr = "ff3e::5c:8000:1".parse().unwrap();
    // Before install the guarded group reaches no one; an unguarded one floods.
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 0], "guarded, not installed");
    let outside: Ipv6Addr = "ff3e::77".parse().unwrap();
    let got = lab.deliver(1, outside, 20);
    assert_eq!(
        got,
        vec![0, 20, 20],
        "unknown group outside the range floods"
    );

    of.install(0, x, &PortSet::from([p2, p3])).await.unwrap();
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 20, 20], "install {{h2,h3}}");

    // Hitless change to {h3}: GROUP_MOD MODIFY.
    of.install(0, x, &PortSet::from([p3])).await.unwrap();
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 20], "modify to {{h3}}");
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x, PortSet::from([3]))
    );

    // Remove: nobody receives (the guard drops uninstalled rendezvous groups).
    of.remove(0, x).await.unwrap();
    of.remove(0, x).await.unwrap(); // absent: not an error
    let got = lab.deliver(1, x, 20);
    assert_eq!(got, vec![0, 0, 0], "removed");
    assert!(of.installed(range).await.unwrap().is_empty());
    let groups = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(!groups.contains("group_id="), "{groups}");
    // Unicast still works through the learned flows.
    lab.ping_all();

    // A deleted port is forgotten (PORT_STATUS): ports, MACs and its learned flows.
    lab.ovs(&["ovs-vsctl", "del-port", "br0", "p3"]);
    let t0 = Instant::now();
    while of.port_count() != 2 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(of.port_count(), 2);
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), None);
    let _ = of.installed(range).await.unwrap(); // a barrier: the deletes are applied
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(flows.contains("output:2"), "{flows}");
    assert!(
        !flows.contains("in_port=3") && !flows.contains("output:3"),
        "{flows}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_reconnect_deletes_groups_the_agent_no_longer_owns() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(2);
    lab.set_controller(PORT + 1);
    let x1: Ipv6Addr = "ff3e::5c:8000:11".parse().unwrap();
    let x2: Ipv6Addr = "ff3e::5c:8000:12".parse().unwrap();
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    let listen = |lab: &OvsLab| OpenFlow::with_listener(lab.listener(PORT + 1), config(false));
    {
        let mut old = listen(&lab).expect("listen");
        old.install(0, x1, &PortSet::from([1, 2])).await.unwrap();
        assert_eq!(old.installed(range).await.unwrap().len(), 1);
    } // the agent "crashes": x1 stays on the switch
    let dump = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(dump.contains("group_id="), "{dump}");
    let mut new = listen(&lab).expect("listen again");
    new.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch reconnects");
    assert!(
        new.installed(range).await.unwrap().is_empty(),
        "stale group deleted"
    );
    let dump = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    assert!(!dump.contains("group_id="), "{dump}");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(!flows.contains("ff3e::5c:8000:11"), "{flows}");

    // Owned groups survive a reconnect (and are re-pushed).
    new.install(0, x2, &PortSet::from([2])).await.unwrap();
    let old = new.connection().expect("connected");
    lab.ovs(&["ovs-vsctl", "del-controller", "br0"]);
    lab.set_controller(PORT + 1);
    new.wait_new_connection(old, Duration::from_secs(10))
        .await
        .expect("reconnects");
    let inst = new.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x2, PortSet::from([2]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_vswitchd_restart_repushes_owned_groups() {
    if !enabled() {
        return;
    }
    // Hosts 1-3 are receivers, host 4 sends (so the excluded host is not the sender).
    let lab = OvsLab::new(4);
    let mut of = connect(&lab, PORT + 3, true).await;
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    of.guard_range(range).await.unwrap();
    lab.ping_all();
    let h1 = Member::Ipv6(OvsLab::host_ip(1));
    let h3 = Member::Ipv6(OvsLab::host_ip(3));
    let p1 = of.port_toward(0, &h1).await.unwrap().expect("h1 learned");
    let p3 = of.port_toward(0, &h3).await.unwrap().expect("h3 learned");
    assert_eq!((p1, p3), (1, 3));
    let x: Ipv6Addr = "ff3e::5c:8000:21".parse().unwrap();
    of.install(0, x, &PortSet::from([p1, p3])).await.unwrap();
    let got = lab.deliver(4, x, 20);
    assert_eq!(got, vec![20, 0, 20, 0], "before restart");

    let old = of.connection().expect("connected");
    lab.stop_vswitchd();
    let t_stop = Instant::now();
    lab.start_vswitchd();
    // A new connection, not the old one still seen as live.
    of.wait_new_connection(old, Duration::from_secs(15))
        .await
        .expect("restarted ovs-vswitchd reconnects within 15 s");
    of.wait_connected(Duration::from_secs(10))
        .await
        .expect("switch connected");
    println!(
        "ovs-vswitchd restart -> agent reconnected and reconciled in {:?}",
        t_stop.elapsed()
    );

    // Learned locations were kept and their flows re-installed (before any new
    // traffic: the hosts' neighbour caches are warm, so they send no ND now).
    assert_eq!(of.port_toward(0, &h1).await.unwrap(), Some(1));
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), Some(3));
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    for i in 1..=4 {
        let learned = format!("in_port={i},dl_src=02:5c:00:00:00:0{i}");
        assert!(flows.contains(&learned), "{learned} missing: {flows}");
    }

    // No install since the restart: reconciliation re-pushed the owned group.
    let groups = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    let gid = format!("group_id={}", SUBSET_GROUP_BASE | 1);
    assert!(groups.contains(&gid), "{groups}");
    assert!(
        groups.contains("output:1") && groups.contains("output:3"),
        "{groups}"
    );
    assert!(!groups.contains("output:2"), "{groups}");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(flows.contains("ipv6_dst=ff3e::5c:8000:21"), "{flows}");
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x, PortSet::from([1, 3]))
    );
    let got = lab.deliver(4, x, 20);
    assert_eq!(got, vec![20, 0, 20, 0], "after restart");

    // The learning pipeline is back: unicast works and hosts are placed again.
    lab.ping_all();
    assert_eq!(of.port_toward(0, &h1).await.unwrap(), Some(1));
    assert_eq!(of.port_toward(0, &h3).await.unwrap(), Some(3));
    assert_eq!(of.learned_macs(), 4);
}

/// SET -> bundle-confirmed latency over 1,000 installs (500 new groups, then 500
/// port-set changes), printed as p50/p99. A measurement, not a check: run with
/// `--ignored` (the benches measure the whole agent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ovs_install_latency() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT + 2, true).await;
    let base = u128::from("ff3e::5c:9000:0".parse::<Ipv6Addr>().unwrap());
    let mut add = Vec::new();
    let mut modify = Vec::new();
    for i in 0..500u128 {
        let g = Ipv6Addr::from(base + i);
        let t = Instant::now();
        of.install(0, g, &PortSet::from([1, 2])).await.unwrap();
        add.push(t.elapsed());
    }
    for i in 0..500u128 {
        let g = Ipv6Addr::from(base + i);
        let t = Instant::now();
        of.install(0, g, &PortSet::from([2, 3])).await.unwrap();
        modify.push(t.elapsed());
    }
    let range: ipnet::Ipv6Net = "ff3e::5c:9000:0/112".parse().unwrap();
    assert_eq!(of.installed(range).await.unwrap().len(), 500);
    let pct = |v: &mut Vec<Duration>, p: usize| {
        v.sort();
        v[(v.len() * p / 100).min(v.len() - 1)]
    };
    println!(
        "openflow install latency (barrier-confirmed, OVS {} userspace): \
         new group+flow p50 {:?} p99 {:?}; modify p50 {:?} p99 {:?}",
        lab.ovs(&["ovs-vswitchd", "--version"])
            .lines()
            .next()
            .unwrap_or(""),
        pct(&mut add, 50),
        pct(&mut add, 99),
        pct(&mut modify, 50),
        pct(&mut modify, 99)
    );
    for i in 0..500u128 {
        of.remove(0, Ipv6Addr::from(base + i)).await.unwrap();
    }
    assert!(of.installed(range).await.unwrap().is_empty());
}

/// One action is one atomic bundle: when the switch refuses part of it (a
/// full flow table, as Open vSwitch's `overflow_policy=refuse` reports it),
/// none of it stays, groups included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_bundle_is_all_or_nothing() {
    if !enabled() {
        return;
    }
    let lab = OvsLab::new(3);
    let mut of = connect(&lab, PORT + 4, false).await;
    // The group table's limit minus groups that are not ours (none).
    assert_eq!(of.view().table_capacity(), Some(0xffff_ff00));
    let x0: Ipv6Addr = "ff3e::5c:8000:30".parse().unwrap();
    of.install(0, x0, &PortSet::from([1])).await.unwrap();
    let x1: Ipv6Addr = "ff3e::5c:8000:31".parse().unwrap();
    let x2: Ipv6Addr = "ff3e::5c:8000:32".parse().unwrap();
    let batch = vec![
        Change::Install {
            vlan: 0,
            group: x1,
            ports: PortSet::from([1, 2]),
            previous: None,
        },
        Change::Install {
            vlan: 0,
            group: x0,
            ports: PortSet::from([2, 3]),
            previous: Some(PortSet::from([1])),
        },
        Change::Install {
            vlan: 0,
            group: x2,
            ports: PortSet::from([3]),
            previous: None,
        },
    ];
    let table1 = |lab: &OvsLab| {
        lab.ovs(&[
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "dump-flows",
            "br0",
            "table=1",
        ])
        .lines()
        .filter(|l| l.contains("cookie="))
        .count()
    };
    // Room for one more flow in table 1: x1's flow fits, x2's does not.
    let limit = (table1(&lab) + 1).to_string();
    lab.ovs(&[
        "ovs-vsctl",
        "--",
        "--id=@ft",
        "create",
        "Flow_Table",
        &format!("flow_limit={limit}"),
        "overflow_policy=refuse",
        "--",
        "set",
        "Bridge",
        "br0",
        "flow_tables:1=@ft",
    ]);
    let groups = |lab: &OvsLab| lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "br0"]);
    let before = groups(&lab);
    let e = of.apply(&batch).await.unwrap_err();
    assert!(matches!(e.error, BackendError::TableFull(_)), "{e:?}");
    assert!(!e.uncertain);
    assert_eq!(groups(&lab), before, "no group of the refused bundle stays");
    let flows = lab.ovs(&["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(!flows.contains("ff3e::5c:8000:31"), "{flows}");
    assert!(!flows.contains("ff3e::5c:8000:32"), "{flows}");
    let range: ipnet::Ipv6Net = "ff3e::5c:0:0/96".parse().unwrap();
    let inst = of.installed(range).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!(
        (inst[0].group, inst[0].ports.clone()),
        (x0, PortSet::from([1]))
    );
    // With room, the same batch applies whole.
    lab.ovs(&["ovs-vsctl", "clear", "Bridge", "br0", "flow_tables"]);
    of.apply(&batch).await.unwrap();
    let inst = of.installed(range).await.unwrap();
    let got: Vec<_> = inst.iter().map(|g| (g.group, g.ports.clone())).collect();
    assert_eq!(
        got,
        vec![
            (x0, PortSet::from([2, 3])),
            (x1, PortSet::from([1, 2])),
            (x2, PortSet::from([3]))
        ]
    );
}
