//! Unit tests of topology parsing and validation.

use super::*;

const SEED: &str = include_str!("../../topologies/seed-three-switch.yaml");
const ONE: &str = include_str!("../../topologies/one-switch.yaml");

#[test]
fn shipped_topologies_are_valid() {
    let seed = Topology::from_yaml_str(SEED).unwrap();
    assert_eq!(seed.switches.len(), 3);
    assert_eq!(seed.hosts.len(), 9);
    assert_eq!(seed.hosts_on("A"), ["X1", "X2"]);
    assert_eq!(seed.hosts_on("B"), ["X3", "X4", "X5", "X6"]);
    assert_eq!(seed.hosts_on("C"), ["X7", "X8", "X9"]);
    let one = Topology::from_yaml_str(ONE).unwrap();
    assert_eq!(one.switches.len(), 1);
}

#[test]
fn natural_order() {
    let mut t = Topology::from_yaml_str(ONE).unwrap();
    for h in ["H10", "H2", "H1"] {
        t.hosts.insert(h.into(), HostSpec::on("S"));
    }
    let order = t.hosts_in_order();
    let pos = |n| order.iter().position(|h| *h == n).unwrap();
    assert!(pos("H1") < pos("H2") && pos("H2") < pos("H10"));
}

#[test]
fn loops_and_islands_are_rejected() {
    let lp = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B], [B, C], [C, A]]\n";
    let e = Topology::from_yaml_str(lp).unwrap_err().to_string();
    assert!(e.contains("loop"), "{e}");
    let island = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B]]\n";
    let e = Topology::from_yaml_str(island).unwrap_err().to_string();
    assert!(e.contains("not connected") && e.contains("C"), "{e}");
    let dup = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B], [B, A]]\n";
    let e = Topology::from_yaml_str(dup).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn bad_references_are_rejected() {
    let t = "switches: {A: {}}\nhosts: {H1: {switch: Z}}\n";
    let e = Topology::from_yaml_str(t).unwrap_err().to_string();
    assert!(e.contains("`Z`"), "{e}");
    let t = "switches: {A: {}}\nhosts: {H1: {switch: A}}\n\
             negotiating_groups: {NG: {members: [H9]}}\n";
    let e = Topology::from_yaml_str(t).unwrap_err().to_string();
    assert!(e.contains("H9"), "{e}");
    let t = "switches: {A-very-long-name: {}}\n";
    assert!(Topology::from_yaml_str(t).is_err());
    let t = "switches: {A: {backend: frobnicator}}\n";
    assert!(Topology::from_yaml_str(t).is_err());
}

#[test]
fn snmp_options() {
    use crate::topology::SnmpVersion;
    let t = "switches:\n  A: {backend: snmp}\n  B: {backend: snmp, snmp: {version: v3}}\n  \
             C: {backend: snmp, snmp: {}}\n  D: {}\nlinks: [[A, B], [B, C], [C, D]]\n";
    let t = Topology::from_yaml_str(t).unwrap();
    let v: Vec<Option<SnmpVersion>> = t.switches.values().map(|s| s.snmp_version()).collect();
    assert_eq!(
        v,
        vec![
            Some(SnmpVersion::V2c),
            Some(SnmpVersion::V3),
            Some(SnmpVersion::V2c),
            None
        ]
    );
    // Only on snmp switches, only known versions and fields, with the place.
    let e = Topology::from_yaml_str("switches:\n  A: {snmp: {version: v3}}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("backend: snmp"), "{e}");
    for bad in [
        "switches: {A: {backend: snmp, snmp: {version: v1}}}\n",
        "switches: {A: {backend: snmp, snmp: {community: x}}}\n",
    ] {
        assert!(Topology::from_yaml_str(bad).is_err(), "{bad}");
    }
}

#[test]
fn trunks_toward_members() {
    let seed = Topology::from_yaml_str(SEED).unwrap();
    let mut t = seed.trunks_toward(&["X1", "X4", "X8"]);
    t.sort();
    let want: Vec<(String, String)> = [("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(t, want);
    let only_b = seed.trunks_toward(&["X4"]);
    let mut only_b: Vec<_> = only_b.iter().map(|(a, b)| format!("{a}>{b}")).collect();
    only_b.sort();
    assert_eq!(only_b, ["A>B", "C>B"]);
}

#[test]
fn default_group_addresses() {
    let seed = Topology::from_yaml_str(SEED).unwrap();
    let a = seed.group_address("NG0").unwrap();
    assert!(a.is_multicast());
    assert!(seed.group_address("nope").is_none());
}

const SHAPED: &str = "loss_pct: 1
rate_mbit: 100
switches: {A: {}, B: {}, C: {}}
links:
  - [A, B]
  - {between: [B, C], loss_pct: 5, rate_mbit: 20}
hosts:
  X1: {switch: A, loss_pct: 0}
  X2: {switch: B, rate_mbit: 1000}
  X3: {switch: C}
";

#[test]
fn shaping_defaults_and_overrides() {
    let t = Topology::from_yaml_str(SHAPED).unwrap();
    assert!(t.is_shaped());
    let s = |l: f64, r: f64| Shaping {
        loss_pct: l,
        rate_mbit: Some(r),
    };
    assert_eq!(t.link_shaping("A", "B"), s(1.0, 100.0));
    assert_eq!(t.link_shaping("C", "B"), s(5.0, 20.0));
    assert_eq!(t.host_shaping("X1"), s(0.0, 100.0));
    assert_eq!(t.host_shaping("X2"), s(1.0, 1000.0));
    assert_eq!(t.host_shaping("X3"), s(1.0, 100.0));
    let plain = Topology::from_yaml_str(SEED).unwrap();
    assert!(!plain.is_shaped());
    assert_eq!(plain.host_shaping("X1"), Shaping::default());
}

fn err_of(text: &str) -> TopologyError {
    Topology::from_yaml_str(text).unwrap_err()
}

fn at(e: &TopologyError) -> (u64, u64, String) {
    match e {
        TopologyError::InvalidAt {
            line,
            column,
            message,
            ..
        } => (*line, *column, message.clone()),
        other => panic!("expected a positioned error, got {other}"),
    }
}

#[test]
fn bad_shaping_values_are_reported_where_they_are() {
    let e = err_of(&SHAPED.replace("loss_pct: 1\n", "loss_pct: -1\n"));
    let (l, c, m) = at(&e);
    assert_eq!((l, c), (1, 11), "{m}");
    assert!(
        m.contains("loss_pct is -1") && m.contains("0 to 100"),
        "{m}"
    );

    let e = err_of(&SHAPED.replace("loss_pct: 5,", "loss_pct: 150,"));
    let (l, _, m) = at(&e);
    assert_eq!(l, 6, "{m}");
    assert!(m.contains("link [B, C]: loss_pct is 150"), "{m}");

    let e = err_of(&SHAPED.replace("rate_mbit: 1000", "rate_mbit: 0"));
    let (l, c, m) = at(&e);
    assert_eq!((l, c), (9, 30), "{m}");
    assert!(
        m.contains("host `X2`: rate_mbit is 0") && m.contains("Mbit/s"),
        "{m}"
    );

    let e = err_of(&SHAPED.replace("rate_mbit: 100\n", "rate_mbit: -3\n"));
    assert_eq!(at(&e).0, 2);
    // Not a number: the YAML layer says where.
    let e = err_of(&SHAPED.replace("loss_pct: 0}", "loss_pct: lots}"));
    let m = e.to_string();
    assert!(m.contains("line 8"), "{m}");
    // Unknown field in a link.
    let e = err_of(&SHAPED.replace("rate_mbit: 20}", "rate: 20}"));
    assert!(e.to_string().contains("rate"), "{e}");
}

#[test]
fn unknown_switches_in_links_and_hosts_are_reported_where_they_are() {
    let e = err_of(&SHAPED.replace("between: [B, C]", "between: [B, Z]"));
    let (l, _, m) = at(&e);
    assert_eq!(l, 6, "{m}");
    assert!(m.contains("`Z`") && m.contains("switches: A, B, C"), "{m}");
    let e = err_of(&SHAPED.replace("X3: {switch: C}", "X3: {switch: Q}"));
    let (l, c, m) = at(&e);
    assert_eq!((l, c), (10, 7), "{m}");
    assert!(m.contains("`Q`"), "{m}");
    let e = err_of(&SHAPED.replace("  - [A, B]\n", "  - [A, B]\n  - [A, C]\n"));
    assert!(at(&e).2.contains("loop"));
    // From a file: the path is in the message.
    let dir = std::env::temp_dir().join(format!("topo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.yaml");
    std::fs::write(&f, SHAPED.replace("loss_pct: 5,", "loss_pct: 101,")).unwrap();
    let m = Topology::from_yaml_file(&f).unwrap_err().to_string();
    assert!(m.contains("bad.yaml, line 6"), "{m}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_without_text_still_rejects_bad_values() {
    let mut t = Topology::from_yaml_str(SEED).unwrap();
    t.loss_pct = Some(f64::NAN);
    assert!(t.validate().is_err());
    t.loss_pct = Some(100.0);
    t.validate().unwrap();
}

#[test]
fn a_negotiating_group_inside_the_rendezvous_pool_is_refused() {
    let yaml = "switches:\n  A: {backend: linux-bridge}\nhosts:\n  h1: {switch: A}\n\
                negotiating_groups:\n  G:\n    group: \"ff05::5c:2:7\"\n    members: [h1]\n";
    let err = Topology::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(err.contains("rendezvous pool"), "{err}");
    assert!(in_rendezvous_pool(&"ff05::5c:2:ffff".parse().unwrap()));
    assert!(!in_rendezvous_pool(&"ff05::5c:1:1".parse().unwrap()));
}

#[test]
fn mtu_defaults_to_1500_and_is_checked_with_its_line() {
    let base = "switches:\n  A: {backend: linux-bridge}\nhosts:\n  h1: {switch: A}\n";
    assert_eq!(Topology::from_yaml_str(base).unwrap().mtu(), 1500);
    let jumbo = format!("mtu: 9000\n{base}");
    assert_eq!(Topology::from_yaml_str(&jumbo).unwrap().mtu(), 9000);
    for bad in [1279, 9001, 0] {
        let err = Topology::from_yaml_str(&format!("{base}mtu: {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("mtu: {bad} is outside 1280-9000")),
            "{err}"
        );
        assert!(err.contains("line 5"), "says where: {err}");
    }
}

#[test]
fn nic_offload_is_off_by_default_and_refused_where_batches_would_break_a_rule() {
    let base = "switches:\n  A: {backend: linux-bridge}\nhosts:\n  h1: {switch: A}\n";
    assert!(!Topology::from_yaml_str(base).unwrap().nic_offload);
    let on = format!("{base}nic_offload: true\nrate_mbit: 200\n");
    assert!(Topology::from_yaml_str(&on).unwrap().nic_offload);
    // Loss anywhere (top level, a host, a link) is refused, with the line.
    for lossy in [
        format!("{base}nic_offload: true\nloss_pct: 1\n"),
        "switches:\n  A: {backend: linux-bridge}\nhosts:\n  h1: {switch: A, loss_pct: 2}\n\
         nic_offload: true\n"
            .to_string(),
        "switches:\n  A: {backend: linux-bridge}\n  B: {backend: snmp}\nlinks:\n  - {between: [A, B], loss_pct: 3}\n\
         hosts:\n  h1: {switch: A}\nnic_offload: true\n"
            .to_string(),
    ] {
        let err = match Topology::from_yaml_str(&lossy) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {lossy}"),
        };
        assert!(err.contains("cannot be combined with loss_pct"), "{err}");
    }
    let err = Topology::from_yaml_str(&format!("{base}nic_offload: true\nloss_pct: 1\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 5"), "says where: {err}");
    let ovs = "switches:\n  A: {backend: linux-bridge}\n  S1: {backend: openflow}\nlinks:\n  - [A, S1]\n\
               hosts:\n  h1: {switch: A}\nnic_offload: true\n";
    let err = Topology::from_yaml_str(ovs).unwrap_err().to_string();
    assert!(err.contains("Open vSwitch switches (switch `S1`)"), "{err}");
}

const SEED_V4: &str = include_str!("../../topologies/seed-three-switch-ipv4.yaml");
const SEED_DUAL: &str = include_str!("../../topologies/seed-three-switch-dual.yaml");

#[test]
fn family_defaults_to_ipv6_and_round_trips() {
    let seed = Topology::from_yaml_str(SEED).unwrap();
    assert_eq!(seed.family, Family::Ipv6);
    let t = format!("family: ipv6\n{SEED}");
    assert_eq!(Topology::from_yaml_str(&t).unwrap(), seed);
    // Not serialized when default: a round trip keeps files unchanged.
    let y = serde_saphyr::to_string(&seed).unwrap();
    assert!(!y.contains("family"), "{y}");
    let v4 = Topology::from_yaml_str(SEED_V4).unwrap();
    let y = serde_saphyr::to_string(&v4).unwrap();
    assert_eq!(Topology::from_yaml_str(&y).unwrap(), v4);
    let e = Topology::from_yaml_str(&format!("family: ipv5\n{SEED}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ipv5"), "{e}");
}

#[test]
fn ipv4_and_dual_files_with_their_groups_parse() {
    let v4 = Topology::from_yaml_str(SEED_V4).unwrap();
    assert_eq!(v4.family, Family::Ipv4);
    assert_eq!(v4.hosts.len(), 9);
    let g: std::net::IpAddr = "239.92.0.1".parse().unwrap();
    assert_eq!(v4.group_ip("NG0"), Some(g));
    // The protocol's group form: IPv4-mapped.
    assert_eq!(
        v4.group_address("NG0"),
        Some("::ffff:239.92.0.1".parse().unwrap())
    );
    // Default IPv4 groups: 239.92.0.N by name order.
    let t = "family: ipv4\nswitches: {A: {}}\nhosts: {H1: {switch: A}}\n\
             negotiating_groups: {G1: {members: [H1]}, G2: {members: [H1]}}\n";
    let t = Topology::from_yaml_str(t).unwrap();
    assert_eq!(t.group_ip("G2"), Some("239.92.0.2".parse().unwrap()));
    let dual = Topology::from_yaml_str(SEED_DUAL).unwrap();
    assert_eq!(dual.family, Family::Dual);
    assert!(dual.group_ip("NG0").unwrap().is_ipv6());
    assert!(dual.group_ip("NG4").unwrap().is_ipv4());
}

#[test]
fn groups_of_the_wrong_family_are_refused_at_their_position() {
    let head = "switches: {A: {}}\nhosts: {H1: {switch: A}}\n";
    // An IPv6 group in an IPv4 file: refused at the group (line 6, where its `group:` is).
    let t = format!(
        "family: ipv4\n{head}negotiating_groups:\n  NG:\n    group: \"ff05::5c:1:1\"\n    members: [H1]\n"
    );
    let e = Topology::from_yaml_str(&t).unwrap_err().to_string();
    assert!(
        e.contains("line 6, column 5") && e.contains("IPv6 address ff05::5c:1:1"),
        "{e}"
    );
    assert!(e.contains("family: dual"), "says what to do: {e}");
    // An IPv4 group in an IPv6 file (no `family:`).
    let t = format!("{head}negotiating_groups:\n  NG: {{group: \"239.1.1.1\", members: [H1]}}\n");
    let e = Topology::from_yaml_str(&t).unwrap_err().to_string();
    assert!(
        e.contains("line 4, column 7") && e.contains("family: ipv4"),
        "{e}"
    );
    // IPv4 nonsense: unicast, link-local control groups, the rendezvous pool.
    for (g, says) in [
        ("10.0.0.1", "not multicast"),
        ("224.0.0.5", "224.0.0.0/24"),
        ("239.92.128.9", "rendezvous"),
    ] {
        let t = format!(
            "family: ipv4\n{head}negotiating_groups:\n  NG: {{group: \"{g}\", members: [H1]}}\n"
        );
        let e = Topology::from_yaml_str(&t).unwrap_err().to_string();
        assert!(
            e.contains("line 5, column 7") && e.contains(says),
            "{g}: {e}"
        );
    }
    // Both families are fine in a dual file.
    let t = format!(
        "family: dual\n{head}negotiating_groups:\n  A: {{group: \"239.1.1.1\", members: [H1]}}\n  \
         B: {{group: \"ff05::1\", members: [H1]}}\n"
    );
    Topology::from_yaml_str(&t).unwrap();
}
