//! The Wireshark dissector (`wireshark/subcast.lua`) on a real lab capture:
//! one Linux bridge S, storage nodes on H1-H3 (negotiating group NG0), a
//! client on H4, the controller on H5 and the agent in S's namespace, all
//! the real daemons. tcpdump records H5's eth0 (the push protocol between
//! controller and agent, and rendezvous) and H4's eth0 (rendezvous and a
//! Replicast put); tshark with the dissector then reads both files.
//!
//! Checks: every datagram to or from the subcast ports decodes (no
//! malformed, no Lua error); the test's own rendezvous requests (two
//! grants, one refusal, two releases) show exactly one SET_SUBSET and one
//! CLEAR per group with their ACKs; every group the put's grants installed
//! has a SET_SUBSET and an ACK; the put's Replicast exchange is all there.
//!
//! Needs root, tshark and the daemons (`cargo build -p subcast-controller
//! -p subcast-agent -p subcast-node --bins`; `cargo test --workspace` builds
//! them); skipped otherwise, failing instead under SUBCAST_LABS_REQUIRED=1.

#[path = "../../draft-spec/tests/tshark/mod.rs"]
mod tshark;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labs::{ChildGuard, Lab, LabOptions, Topology};
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
};

const NG0: &str = "ff05::5c:1:1";
const POOL: &str = "ff15::5c00:0/112";
const NODES: [&str; 3] = ["H1", "H2", "H3"];
const CLIENT: &str = "H4";
const CONTROLLER: &str = "H5";

fn key_hex(n: u8) -> String {
    format!("{}{n:02x}", "5c".repeat(31))
}

fn key(id: u32, n: u8) -> Key {
    Key::from_hex(id, &key_hex(n)).expect("test key")
}

/// The daemons next to this test's binary (target/debug), or `None` with a
/// skip line; a failure under SUBCAST_LABS_REQUIRED.
fn daemons() -> Option<[PathBuf; 3]> {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bins = ["subcast-controller", "subcast-agent", "subcast-node"].map(|b| dir.join(b));
    let missing: Vec<String> = bins
        .iter()
        .filter(|b| !b.is_file())
        .map(|b| b.display().to_string())
        .collect();
    let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        missing.is_empty() || !required,
        "{} is set but {missing:?} are missing: run `cargo build -p subcast-controller \
         -p subcast-agent -p subcast-node --bins` (cargo test --workspace does)",
        labs::REQUIRE_ENV
    );
    if !missing.is_empty() {
        println!("SKIP: daemons not built: {missing:?}");
        return None;
    }
    Some(bins)
}

/// Every daemon log of the lab's work directory, for failure messages.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log"))
    {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        out += &format!("--- {}\n{text}", f.display());
    }
    out
}

fn wait_for(what: &str, dir: &Path, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < within,
            "timed out waiting for {what}\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_has(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(text))
}

fn members_yaml(lab: &Lab, indent: &str) -> String {
    NODES
        .iter()
        .map(|m| {
            let h = lab.host(m);
            format!(
                "{indent}- {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
                h.ipv6,
                h.mac_string()
            )
        })
        .collect()
}

fn controller_yaml(lab: &Lab) -> String {
    format!(
        r#"controller:
  id: 1
  udp_listen: "[::]:7411"
  database: ":memory:"
  agent_timeout_ms: 15000
keys:
  - {{ id: 1, hex: "{k1}" }}
  - {{ id: 2, hex: "{k2}" }}
  - {{ id: 101, hex: "{k101}" }}
vlans:
  - {{ id: 0, pool: ["{POOL}"] }}
switches:
  - name: S
    id: 1
    vlans: [0]
    agent: {{ address: "[{mgmt}]:7410", key_id: 1, agent_key_id: 101 }}
groups:
  - name: ng0
    vlan: 0
    parent: "{NG0}"
    members:
{members}leases: {{ default_ms: 10000, max_ms: 60000, warm_ms: 0 }}
fanout: {{ retransmit_ms: 20, attempts: 5 }}
api:
  listen: "[::1]:8411"
  tokens:
    - {{ role: admin, name: ops, token: lab-admin-token-0123456789 }}
rendezvous:
  key_ids: [2]
"#,
        k1 = key_hex(1),
        k2 = key_hex(2),
        k101 = key_hex(101),
        mgmt = lab.switch("S").mgmt_ipv6,
        members = members_yaml(lab, "      "),
    )
}

fn agent_yaml(lab: &Lab, dir: &Path) -> String {
    for (id, n) in [(1, 1), (101, 101)] {
        let p = dir.join(format!("k{id}.key"));
        std::fs::write(&p, key_hex(n)).expect("key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    format!(
        r#"switch_id: 1
backend:
  kind: linux-bridge
  bridge: br0
controller: "[{ctl}]:7411"
listen: "[::]:7410"
key: {{ id: 101, file: "{dir}/k101.key" }}
controller_keys:
  - {{ id: 1, file: "{dir}/k1.key" }}
rendezvous_range: ff15::5c00:0/104
heartbeat_interval_ms: 1000
parent_groups:
  - address: {NG0}
    vlan: 0
    members:
{members}"#,
        ctl = lab.host(CONTROLLER).ipv6,
        dir = dir.display(),
        members = members_yaml(lab, "      "),
    )
}

fn node_yaml(lab: &Lab, dir: &Path, id: Option<usize>) -> String {
    let mut c = format!(
        "negotiating_groups: [{NG0}]\ninterface: eth0\nreplicas: 2\nchunk_size: 65536\n\
         key: {{id: 7, hex: \"{}\"}}\ncontroller: {{address: \"[{}]:7411\", vlan: 0, key: {{id: 2, hex: \"{}\"}}}}\n",
        key_hex(7),
        lab.host(CONTROLLER).ipv6,
        key_hex(2),
    );
    if let Some(i) = id {
        c += &format!(
            "node: {{id: {i}, store: {}/node{i}, reserve_bytes: 0}}\n",
            dir.display()
        );
    }
    c
}

/// The test as a rendezvous client on H4: request, wait for the answer.
struct RvClient {
    sock: UdpSocket,
    ctl: SocketAddr,
    sealer: Sealer,
    opener: Opener,
}

impl RvClient {
    /// Sends `msg` (sealed afresh on every retransmission, as the replay
    /// window wants) until an answer that `answer` accepts arrives.
    fn ask<T>(&mut self, msg: &Message, mut answer: impl FnMut(Message) -> Option<T>) -> T {
        let mut buf = vec![0u8; 9216];
        for _ in 0..10 {
            let bytes = self.sealer.seal(msg, now_us());
            self.sock
                .send_to(&bytes, self.ctl)
                .expect("send to the controller");
            // Until the read timeout: skip answers to earlier requests.
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let d = self
                    .opener
                    .open(&buf[..n], now_us())
                    .unwrap_or_else(|e| panic!("controller answer refused: {e}"));
                if let Some(t) = answer(d.message) {
                    return t;
                }
            }
        }
        panic!("no answer from the controller to {}", msg.name());
    }

    fn request(&mut self, id: u64, parent: Ipv6Addr, targets: &[Ipv6Addr]) -> GrantOutcome {
        let req = Message::RendezvousRequest(RendezvousRequest {
            request_id: id,
            vlan: 0,
            parent,
            lifetime_ms: 10_000,
            targets: targets.iter().copied().map(Member::Ipv6).collect(),
        });
        self.ask(&req, |m| match m {
            Message::RendezvousGrant(g) if g.request_id == id => Some(g.outcome),
            _ => None,
        })
    }

    fn release(&mut self, lease_id: u64) -> bool {
        let rel = Message::RendezvousRelease(RendezvousRelease { lease_id });
        self.ask(&rel, |m| match m {
            Message::ReleaseAck(a) if a.lease_id == lease_id => Some(a.released),
            _ => None,
        })
    }
}

/// One decoded frame: cells of the fields asked from tshark.
struct Row(BTreeMap<&'static str, Vec<String>>);

impl Row {
    fn all(&self, f: &str) -> &[String] {
        self.0.get(f).map_or(&[], Vec::as_slice)
    }
    fn one(&self, f: &str) -> &str {
        self.all(f).first().map_or("", String::as_str)
    }
}

const FIELDS: [&str; 14] = [
    "frame.number",
    "udp.srcport",
    "udp.dstport",
    "subcast.type",
    "subcast.txid",
    "subcast.group",
    "subcast.op",
    "subcast.grant_status",
    "subcast.reused",
    "subcast.released",
    "subcast.error",
    "_ws.lua.error",
    "subcast.internal_error",
    "_ws.malformed",
];

fn decode(tshark: &Path, pcap: &Path) -> Vec<Row> {
    tshark::fields(tshark, pcap, &FIELDS)
        .into_iter()
        .map(|cells| {
            Row(FIELDS
                .iter()
                .zip(cells.iter().chain(std::iter::repeat(&String::new())))
                .map(|(f, c)| {
                    let v = c.split('|').filter(|s| !s.is_empty()).map(str::to_owned);
                    (*f, v.collect())
                })
                .collect())
        })
        .collect()
}

/// Every frame on the subcast ports decodes cleanly; returns messages per type.
fn check_clean(what: &str, rows: &[Row]) -> BTreeMap<String, usize> {
    let mut types = BTreeMap::new();
    for r in rows {
        let ports = [r.one("udp.srcport"), r.one("udp.dstport")];
        let ours = ports.iter().any(|p| ["7410", "7411", "7412"].contains(p));
        let problems = [
            "subcast.error",
            "_ws.lua.error",
            "subcast.internal_error",
            "_ws.malformed",
        ]
        .map(|f| (f, r.all(f)));
        assert!(
            problems.iter().all(|(_, v)| v.is_empty()),
            "{what} frame {}: {problems:?}",
            r.one("frame.number")
        );
        if ours {
            assert!(
                !r.one("subcast.type").is_empty(),
                "{what} frame {} (ports {ports:?}) is not decoded as subcast",
                r.one("frame.number")
            );
        }
        if !r.one("subcast.type").is_empty() {
            *types.entry(r.one("subcast.type").to_owned()).or_default() += 1;
        }
    }
    types
}

/// Per group: the transaction ids that set it and that cleared it (from
/// SET_SUBSET, CLEAR and BATCH items), and the acknowledged ids.
#[derive(Debug, Default)]
struct Push {
    set: BTreeMap<String, BTreeSet<String>>,
    clear: BTreeMap<String, BTreeSet<String>>,
    acked: BTreeSet<String>,
}

fn push_protocol(rows: &[Row]) -> Push {
    let mut p = Push::default();
    for r in rows {
        let tx = r.one("subcast.txid").to_owned();
        match r.one("subcast.type") {
            "0x10" => {
                p.set
                    .entry(r.one("subcast.group").into())
                    .or_default()
                    .insert(tx);
            }
            "0x11" => {
                p.clear
                    .entry(r.one("subcast.group").into())
                    .or_default()
                    .insert(tx);
            }
            "0x14" => {
                for (op, g) in r.all("subcast.op").iter().zip(r.all("subcast.group")) {
                    let m = if op == "1" { &mut p.set } else { &mut p.clear };
                    m.entry(g.clone()).or_default().insert(tx.clone());
                }
            }
            "0x12" | "0x15" => {
                p.acked.insert(tx);
            }
            _ => {}
        }
    }
    p
}

#[test]
fn lab_capture_decodes_cleanly_with_the_counts_the_test_caused() {
    if !labs::lab_tests_enabled() {
        println!("SKIP lab_capture_decodes_cleanly: needs root and iproute2");
        return;
    }
    let Some(tshark) = tshark::tshark("lab_capture_decodes_cleanly") else {
        return;
    };
    let Some([ctl_bin, agent_bin, node_bin]) = daemons() else {
        return;
    };
    let t0 = Instant::now();
    let topo = Topology::from_yaml_str(&format!(
        "switches:\n  S: {{backend: linux-bridge}}\nhosts:\n  H1: {{switch: S}}\n  H2: {{switch: S}}\n  \
         H3: {{switch: S}}\n  H4: {{switch: S}}\n  H5: {{switch: S}}\nnegotiating_groups:\n  \
         NG0: {{group: \"{NG0}\", members: [H1, H2, H3]}}\n"
    ))
    .expect("topology");
    let lab = Lab::build(
        &topo,
        LabOptions {
            close_mld: true,
            static_negotiating_groups: true,
            ..Default::default()
        },
    )
    .expect("lab");
    let dir = lab.workdir().to_owned();
    let capture = |host: &str| {
        lab.capture_on_snap(&lab.host(host).netns, "eth0", "inout", "", 65535)
            .expect("capture")
    };
    let scratch = tshark::Scratch::new("lab-dissector");
    let decode_capture = |name: &str, cap: labs::Capture| {
        let (data, _) = cap.stop_raw().expect("capture stops");
        let p = scratch.0.join(format!("{name}.pcap"));
        std::fs::write(&p, data).unwrap();
        tshark::keep(&p, &format!("lab-{name}"));
        let rows = decode(&tshark, &p);
        let types = check_clean(name, &rows);
        println!("{name}: {} frames, subcast types {types:?}", rows.len());
        (rows, types)
    };
    let n = |m: &BTreeMap<String, usize>, t: &str| m.get(t).copied().unwrap_or(0);

    // Phase 1, captured at the controller: agent start and the test's own
    // rendezvous requests.
    let cap = capture(CONTROLLER);
    // Controller, then the agent (its HELLO must find the controller up).
    let mut procs: Vec<ChildGuard> = Vec::new();
    let spawn = |ns: &str, args: &[&str], log: &str| {
        let f = std::fs::File::create(dir.join(log)).expect("log file");
        // Daemons log to stdout or stderr: both into the log file, at info
        // level (the waits below read it).
        let out = f.try_clone().expect("log file");
        lab.spawn_with(ns, args, move |c| {
            c.stderr(f)
                .stdout(out)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1");
        })
        .expect("spawn")
    };
    let cfg = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("config");
        p.display().to_string()
    };
    let ctl_cfg = cfg("controller.yaml", controller_yaml(&lab));
    let ctl_log = dir.join("controller.log");
    procs.push(spawn(
        &lab.host(CONTROLLER).netns,
        &[ctl_bin.to_str().unwrap(), "serve", "--config", &ctl_cfg],
        "controller.log",
    ));
    wait_for("the controller", &dir, Duration::from_secs(10), || {
        log_has(&ctl_log, "subcast-controller running")
    });
    let agent_cfg = cfg("agent.yaml", agent_yaml(&lab, &dir));
    procs.push(spawn(
        &lab.switch("S").netns,
        &[agent_bin.to_str().unwrap(), "run", "--config", &agent_cfg],
        "agent.log",
    ));
    wait_for(
        "the agent's HELLO at the controller",
        &dir,
        Duration::from_secs(10),
        || log_has(&ctl_log, "agent HELLO"),
    );

    // Two grants (distinct target sets), one refusal, two releases.
    let mut rv = RvClient {
        sock: lab.udp_socket(CLIENT, 0, &[]).expect("client socket"),
        ctl: SocketAddr::new(lab.host(CONTROLLER).ipv6.into(), 7411),
        sealer: Sealer::new(key(2, 2), 0x7e57, now_us()),
        opener: Opener::new(Keyring::new([key(2, 2)]), ReplayGuard::default()),
    };
    rv.sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let ng0: Ipv6Addr = NG0.parse().unwrap();
    let ip = |h: &str| lab.host(h).ipv6;
    let mut granted = Vec::new();
    for (id, targets) in [(1u64, [ip("H1"), ip("H2")]), (2, [ip("H1"), ip("H3")])] {
        match rv.request(id, ng0, &targets) {
            GrantOutcome::Granted {
                group, lease_id, ..
            } => granted.push((group.to_string(), lease_id)),
            GrantOutcome::Refused { reason, detail } => {
                panic!("request {id} refused: {reason:?} {detail}")
            }
        }
    }
    let unknown_parent: Ipv6Addr = "ff05::5c:9:9".parse().unwrap();
    assert!(matches!(
        rv.request(3, unknown_parent, &[ip("H1")]),
        GrantOutcome::Refused { .. }
    ));
    for (_, lease) in &granted {
        assert!(rv.release(*lease), "lease {lease} not released");
    }
    // Every answer is in: a grant after its SET_SUBSET's ACK, a release ack
    // after its CLEAR's.
    let (rows, types) = decode_capture("phase1-controller", cap);
    let p = push_protocol(&rows);
    let test_groups: BTreeSet<String> = granted.iter().map(|(g, _)| g.clone()).collect();
    assert_eq!(
        p.set.keys().cloned().collect::<BTreeSet<_>>(),
        test_groups,
        "{p:?}"
    );
    assert_eq!(
        p.clear.keys().cloned().collect::<BTreeSet<_>>(),
        test_groups,
        "{p:?}"
    );
    for g in &test_groups {
        assert_eq!(
            p.set[g].len(),
            1,
            "one SET_SUBSET transaction for {g}: {p:?}"
        );
        assert_eq!(p.clear[g].len(), 1, "one CLEAR transaction for {g}: {p:?}");
    }
    for tx in p.set.values().chain(p.clear.values()).flatten() {
        assert!(p.acked.contains(tx), "txid {tx} never acked: {p:?}");
    }
    assert!(n(&types, "0x01") >= 1, "the agent's HELLO: {types:?}");
    assert!(n(&types, "0x20") >= 3, "three requests: {types:?}");
    assert!(n(&types, "0x22") >= 2, "two releases: {types:?}");
    let statuses: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.one("subcast.type") == "0x21")
        .map(|r| r.one("subcast.grant_status"))
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["0", "1"]),
        "granted and unknown-parent"
    );
    let releases: Vec<&str> = rows
        .iter()
        .filter(|r| r.one("subcast.type") == "0x23")
        .map(|r| r.one("subcast.released"))
        .collect();
    assert!(
        releases.len() >= 2 && releases.iter().all(|r| *r == "1"),
        "{releases:?}"
    );

    // Phase 2, captured at the controller and at the client: a put
    // through the storage nodes over rendezvous groups.
    let cap_ctl = capture(CONTROLLER);
    let cap_client = capture(CLIENT);
    for (i, h) in NODES.iter().enumerate() {
        let c = cfg(
            &format!("node{}.yaml", i + 1),
            node_yaml(&lab, &dir, Some(i + 1)),
        );
        procs.push(spawn(
            &lab.host(h).netns,
            &[node_bin.to_str().unwrap(), "serve", "--config", &c],
            &format!("node{}.log", i + 1),
        ));
    }
    let client_cfg = cfg("client.yaml", node_yaml(&lab, &dir, None));
    let object = dir.join("object.bin");
    std::fs::write(
        &object,
        (0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let put = [
        node_bin.to_str().unwrap(),
        "put",
        object.to_str().unwrap(),
        "--name",
        "dissector/obj",
        "--transport",
        "rendezvous",
        "--quiet",
        "--config",
        &client_cfg,
    ];
    // The nodes need a moment to start: retry until the put succeeds.
    let mut last = String::new();
    let stored = (0..50).any(|_| match lab.exec(&lab.host(CLIENT).netns, &put) {
        Ok(_) => true,
        Err(e) => {
            last = e.to_string();
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(stored, "the put never succeeded ({last})\n{}", logs(&dir));
    // The client releases its leases as it ends: wait for the switch to
    // hold no rendezvous group any more (CLEAR applied, ACK on its way).
    let pool: Vec<&str> = POOL.split("::").take(1).collect();
    wait_for(
        "the put's groups cleared",
        &dir,
        Duration::from_secs(15),
        || {
            lab.mdb_show("S")
                .expect("mdb")
                .iter()
                .all(|e| !e.group.to_string().starts_with(pool[0]))
        },
    );
    let (ctl_rows, ctl_types) = decode_capture("phase2-controller", cap_ctl);
    let (_, client_types) = decode_capture("phase2-client", cap_client);
    println!("lab run with captures: {:?}", t0.elapsed());

    // Every group a grant named is set on the switch, every group set was
    // granted, every instruction acknowledged.
    let p = push_protocol(&ctl_rows);
    let grants: BTreeSet<String> = ctl_rows
        .iter()
        .filter(|r| r.one("subcast.type") == "0x21" && r.one("subcast.grant_status") == "0")
        .flat_map(|r| r.all("subcast.group").to_vec())
        .collect();
    assert!(
        !grants.is_empty(),
        "the put got no rendezvous group: {ctl_types:?}"
    );
    assert_eq!(
        p.set.keys().cloned().collect::<BTreeSet<_>>(),
        grants,
        "{p:?}"
    );
    for tx in p.set.values().chain(p.clear.values()).flatten() {
        assert!(p.acked.contains(tx), "txid {tx} never acked: {p:?}");
    }
    for (t, name) in [
        ("0x40", "PUT_PROPOSAL"),
        ("0x41", "PUT_BID"),
        ("0x42", "PUT_ACCEPT"),
        ("0x43", "DATA"),
        ("0x44", "PUT_ACK"),
    ] {
        assert!(n(&client_types, t) >= 1, "{name} missing: {client_types:?}");
    }
    // 100 000 octets, each DATA datagram carrying at most 1500 - 48 - 80.
    assert!(
        n(&client_types, "0x43") >= 100_000 / 1372,
        "DATA: {client_types:?}"
    );
    drop(procs);
}
