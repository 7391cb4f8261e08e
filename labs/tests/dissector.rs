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
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use labs::Lab;
use one_switch::{CLIENT, CONTROLLER, NG0, OneSwitch, POOL, wait_for};
use subcast_proto::GrantOutcome;

#[path = "common/one_switch.rs"]
mod one_switch;

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

/// Records everything on `host`'s eth0, whole frames.
fn capture(lab: &Lab, host: &str) -> labs::Capture {
    lab.capture_on_snap(&lab.host(host).netns, "eth0", "inout", "", 65535)
        .expect("capture")
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
    let t0 = Instant::now();
    let Some(mut s) = OneSwitch::build() else {
        return;
    };
    let dir = s.dir.clone();
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
    let cap = capture(&s.lab, CONTROLLER);
    s.start_controller_and_agent("[::1]:8411", "");

    // Two grants (distinct target sets), one refusal, two releases.
    let mut rv = s.rv_client();
    let ng0: Ipv6Addr = NG0.parse().unwrap();
    let ip = |h: &str| s.ip(h);
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
    let cap_ctl = capture(&s.lab, CONTROLLER);
    let cap_client = capture(&s.lab, CLIENT);
    s.start_nodes("");
    s.put("dissector/obj", 100_000);
    // The client releases its leases as it ends: wait for the switch to
    // hold no rendezvous group any more (CLEAR applied, ACK on its way).
    let pool: Vec<&str> = POOL.split("::").take(1).collect();
    wait_for(
        "the put's groups cleared",
        &dir,
        Duration::from_secs(15),
        || {
            s.lab
                .mdb_show("S")
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
        ("0x47", "keyed DATA"),
        ("0x44", "PUT_ACK"),
    ] {
        assert!(n(&client_types, t) >= 1, "{name} missing: {client_types:?}");
    }
    // 100 000 octets, each keyed or untagged DATA datagram carrying at
    // most 1500 - 48 - 24. A first pass tags index 0 and every 32nd and
    // sends the rest untagged (0x4e), so both kinds are there.
    assert!(
        n(&client_types, "0x4e") >= 1,
        "untagged DATA missing: {client_types:?}"
    );
    assert!(
        n(&client_types, "0x47") + n(&client_types, "0x4e") >= 100_000 / 1428,
        "DATA: {client_types:?}"
    );
    drop(s);
}
