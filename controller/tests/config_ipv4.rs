//! IPv4 pools, parent groups and members in the configuration (issue 21):
//! what is accepted, and each refusal with its line and column.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use subcast_controller::config::{self, Problem};

fn problems(yaml: &str) -> Vec<Problem> {
    let d = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/lab.key");
    std::fs::copy(src, d.path().join("lab.key")).unwrap();
    std::fs::set_permissions(
        d.path().join("lab.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    match config::load_str(yaml, d.path()) {
        Ok((_, w)) => w,
        Err(p) => p,
    }
}

fn find<'a>(ps: &'a [Problem], needle: &str) -> &'a Problem {
    ps.iter()
        .find(|p| p.message.contains(needle))
        .unwrap_or_else(|| panic!("no problem mentioning {needle:?} in {ps:#?}"))
}

const BASE4: &str = "\
keys:
  - { id: 1, file: lab.key }
vlans:
  - id: 10
    pool: [\"239.92.128.0/24\"]
switches:
  - name: s1
    id: 1
    vlans: [10]
    agent: { address: \"10.0.0.1:7410\", key_id: 1 }
groups:
  - name: g
    vlan: 10
    parent: \"239.92.0.1\"
    members:
      - { name: h1, ipv4: \"10.92.0.1\", mac: \"02:00:00:00:00:01\" }
      - { name: h2, ipv4: \"10.92.0.2\", mac: \"02:00:00:00:00:02\" }
";

#[test]
fn ipv4_pool_parent_and_members_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/lab.key");
    std::fs::copy(src, d.path().join("lab.key")).unwrap();
    std::fs::set_permissions(
        d.path().join("lab.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (cfg, warnings) = config::load_str(BASE4, d.path()).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    let g = cfg.group("239.92.0.1").expect("group by IPv4 parent");
    assert_eq!(g.parent.to_string(), "::ffff:239.92.0.1");
    assert_eq!(g.member("10.92.0.2").unwrap().name, "h2");
    let m = subcast_proto::Member::Ipv4("10.92.0.1".parse().unwrap());
    assert_eq!(g.member_of(&m).unwrap().name, "h1");
    assert_eq!(
        cfg.vlans[&10].pool[0].to_string(),
        "::ffff:239.92.128.0/120"
    );
}

#[test]
fn ipv4_refusals_are_located() {
    let at = |y: &str, needle: &str| {
        let ps = problems(y);
        let p = find(&ps, needle);
        (p.line, p.column)
    };
    // A pool outside 224.0.0.0/4.
    let y = BASE4.replace("239.92.128.0/24", "10.92.128.0/24");
    assert_eq!(at(&y, "not inside 224.0.0.0/4"), (5, 12));
    // A pool whose groups would share MACs.
    let y = BASE4.replace("239.92.128.0/24", "239.0.0.0/8");
    assert_eq!(at(&y, "shorter than /9"), (5, 12));
    // Two pools of one VLAN with the same low 23 bits.
    let y = BASE4.replace(
        "[\"239.92.128.0/24\"]",
        "[\"239.92.128.0/24\", \"238.220.128.0/24\"]",
    );
    assert_eq!(at(&y, "shares Ethernet addresses"), (5, 31));
    // Both families in one VLAN's pool.
    let y = BASE4.replace(
        "[\"239.92.128.0/24\"]",
        "[\"239.92.128.0/24\", \"ff15::5c:1:0/112\"]",
    );
    assert_eq!(at(&y, "mixes IPv4 and IPv6"), (5, 31));
    // An IPv6 parent in a VLAN whose pool is IPv4.
    let y = BASE4.replace("parent: \"239.92.0.1\"", "parent: \"ff15::5c:0:1\"");
    assert_eq!(at(&y, "VLAN 10's pool is IPv4"), (14, 13));
    // A parent with the MAC of a pool address.
    let y = BASE4.replace("parent: \"239.92.0.1\"", "parent: \"224.92.128.9\"");
    assert_eq!(at(&y, "shares its Ethernet address"), (14, 13));
    // A parent that is not multicast.
    let y = BASE4.replace("parent: \"239.92.0.1\"", "parent: \"10.92.0.9\"");
    assert_eq!(at(&y, "not a multicast address"), (14, 13));
    // An IPv6 member in an IPv4 group.
    let y = BASE4.replace("ipv4: \"10.92.0.2\"", "ipv6: \"fd00::2\"");
    assert_eq!(at(&y, "whose parent is IPv4"), (17, 27));
    // A multicast IPv4 member.
    let y = BASE4.replace("ipv4: \"10.92.0.2\"", "ipv4: \"239.1.1.1\"");
    assert_eq!(at(&y, "not a unicast IPv4 address"), (17, 27));
    // No address, and both addresses.
    let y = BASE4.replace("ipv4: \"10.92.0.2\", ", "");
    assert_eq!(at(&y, "has no address"), (17, 17));
    let y = BASE4.replace(
        "ipv4: \"10.92.0.2\",",
        "ipv4: \"10.92.0.2\", ipv6: \"fd00::2\",",
    );
    assert_eq!(at(&y, "both ipv4 and ipv6"), (17, 46));
}

#[test]
fn shipped_ipv4_example_is_valid() {
    let d = tempfile::tempdir().unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    for f in ["controller-ipv4.yaml", "lab.key"] {
        std::fs::copy(dir.join(f), d.path().join(f)).unwrap();
    }
    std::fs::set_permissions(
        d.path().join("lab.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (cfg, warnings) =
        config::load_file(&d.path().join("controller-ipv4.yaml")).expect("valid example");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.groups[0].members.len(), 4);
}
