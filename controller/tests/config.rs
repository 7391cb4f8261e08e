//! check-config: the shipped example, the embedded default, and every kind
//! of problem with its line and column; the binary's exit code and output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use subcast_controller::config::{self, Problem, Severity};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Copies the example (config, keys, tokens) into a temp dir with the
/// secret files at mode 600 (git does not keep file modes).
fn example_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "controller.yaml",
        "lab.key",
        "nodes.key",
        "admin.token",
        "nodes.token",
    ] {
        std::fs::copy(example_dir().join(f), d.path().join(f)).unwrap();
        let mode = if f.ends_with(".yaml") { 0o644 } else { 0o600 };
        std::fs::set_permissions(d.path().join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    d
}

fn problems(yaml: &str) -> Vec<Problem> {
    let d = example_copy();
    match config::load_str(yaml, d.path()) {
        Ok((_, w)) => w,
        Err(p) => p,
    }
}

/// The problem whose message contains `needle`.
fn find<'a>(ps: &'a [Problem], needle: &str) -> &'a Problem {
    ps.iter()
        .find(|p| p.message.contains(needle))
        .unwrap_or_else(|| panic!("no problem mentioning {needle:?} in {ps:#?}"))
}

#[test]
fn shipped_example_is_valid() {
    let d = example_copy();
    let (c, warnings) = config::load_file(&d.path().join("controller.yaml")).unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.switches.len(), 3);
    assert_eq!(c.groups.len(), 2);
    assert_eq!(c.groups[0].members.len(), 6);
    assert_eq!(c.tokens.len(), 2);
    assert_eq!(c.rendezvous_key_ids, vec![2]);
    assert_eq!(
        c.database.as_deref(),
        Some(d.path().join("controller.sqlite").as_path())
    );
}

#[test]
fn embedded_default_is_valid_with_lab_warnings_only() {
    let (c, w) = config::load_default().unwrap();
    assert_eq!(c.switches.len(), 3);
    assert!(
        w.iter()
            .all(|p| p.severity == Severity::Warning && p.message.contains("inline")),
        "{w:#?}"
    );
}

#[test]
fn world_readable_and_missing_key_files() {
    let d = example_copy();
    std::fs::set_permissions(
        d.path().join("lab.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::remove_file(d.path().join("nodes.token")).unwrap();
    let ps = config::load_file(&d.path().join("controller.yaml")).unwrap_err();
    let text = std::fs::read_to_string(d.path().join("controller.yaml")).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
    let p = find(&ps, "world-readable");
    assert_eq!((p.line, p.column), (line_of("file: lab.key"), 11));
    assert!(p.hint.contains("chmod 600"));
    let p = find(&ps, "nodes.token cannot be read");
    assert_eq!(p.line, line_of("file: nodes.token"));
    assert_eq!(ps.len(), 2, "{ps:#?}");
}

const BASE: &str = "\
keys:
  - { id: 1, file: lab.key }
vlans:
  - id: 10
    pool: [\"ff15::5c:1:0/112\"]
switches:
  - name: s1
    id: 1
    vlans: [10]
    agent: { address: \"[fd00::1]:7410\", key_id: 1 }
groups:
  - name: g
    vlan: 10
    parent: \"ff15::5c:0:1\"
    members:
      - { name: h1, ipv6: \"fd00::101\", mac: \"02:00:00:00:00:01\" }
";

#[test]
fn base_is_valid() {
    assert!(problems(BASE).is_empty());
}

#[test]
fn unknown_keys_have_line_and_column_and_are_all_listed() {
    let y = BASE
        .replace("    vlans: [10]\n", "    vlans: [10]\n    vlanz: [11]\n")
        .replace("vlan: 10\n", "vlan: 10\n    colour: red\n");
    let ps = problems(&y);
    assert_eq!(ps.len(), 2, "{ps:#?}");
    let p = &ps[0];
    assert_eq!(p.message, "unknown key `vlanz` in `switches[]`");
    assert!(
        p.hint.contains("name, id, vlans, agent, budget"),
        "lists valid keys: {p:?}"
    );
    assert_eq!((p.line, p.column), (10, 5));
    assert!(p.render("f.yaml").starts_with("f.yaml:10:5: error: "));
    assert_eq!(ps[1].message, "unknown key `colour` in `groups[]`");
    assert_eq!((ps[1].line, ps[1].column), (15, 5));
}

#[test]
fn yaml_syntax_error_is_located() {
    let ps = problems("vlans:\n  - id: 10\n    pool: [ff15::/112\n");
    assert_eq!(ps.len(), 1);
    assert!(ps[0].line >= 3, "{ps:?}");
}

#[test]
fn overlapping_pools() {
    let y = BASE.replace(
        "    pool: [\"ff15::5c:1:0/112\"]\n",
        "    pool: [\"ff15::5c:1:0/112\"]\n  - id: 20\n    pool: [\"ff15::5c:1:8000/113\"]\n",
    );
    let ps = problems(&y);
    let p = find(&ps, "overlaps");
    assert_eq!((p.line, p.column), (7, 12));
    assert!(p.message.contains("VLAN 10"));
}

#[test]
fn member_in_two_vlans() {
    let y = BASE.replace(
        "    pool: [\"ff15::5c:1:0/112\"]\n",
        "    pool: [\"ff15::5c:1:0/112\"]\n  - id: 20\n    pool: [\"ff15::5c:2:0/112\"]\n",
    ) + "  - name: g2\n    vlan: 20\n    parent: \"ff15::5c:0:2\"\n    members:\n      - { name: hx, ipv6: \"fd00::101\", mac: \"02:00:00:00:00:09\" }\n";
    let ps = problems(&y);
    let p = find(&ps, "is in VLAN 20 here and in VLAN 10");
    assert_eq!((p.line, p.column), (23, 17));
    assert!(p.message.contains("fd00::101"));
}

#[test]
fn parent_not_multicast() {
    let y = BASE.replace("parent: \"ff15::5c:0:1\"", "parent: \"fd00::1\"");
    let ps = problems(&y);
    let p = find(&ps, "not a multicast address");
    assert_eq!((p.line, p.column), (14, 13));
    assert!(p.hint.contains("ff00::/8"));
}

#[test]
fn other_checks() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "pool: [\"ff15::5c:1:0/112\"]",
            "pool: [\"fd00::/112\"]",
            "not inside ff00::/8",
        ),
        (
            "pool: [\"ff15::5c:1:0/112\"]",
            "pool: [\"ff15::5c:0:0/112\"]",
            "lies inside the rendezvous pool",
        ),
        ("key_id: 1 }", "key_id: 9 }", "key id 9 is not defined"),
        (
            "key_id: 1 }",
            "key_id: 1, agent_key_id: 7 }",
            "key id 7 is not defined",
        ),
        (
            "vlans: [10]",
            "vlans: [10, 11]",
            "VLAN 11, which is not defined",
        ),
        (
            "mac: \"02:00:00:00:00:01\"",
            "mac: \"01:00:00:00:00:01\"",
            "multicast MAC",
        ),
        (
            "mac: \"02:00:00:00:00:01\"",
            "mac: \"02:00:00\"",
            "invalid MAC",
        ),
        (
            "ipv6: \"fd00::101\"",
            "ipv6: \"ff02::1\"",
            "not a unicast IPv6",
        ),
        (
            "address: \"[fd00::1]:7410\"",
            "address: \"agent-one\"",
            "is not an address",
        ),
    ];
    for (from, to, needle) in cases {
        assert!(BASE.contains(from), "{from}");
        let ps = problems(&BASE.replace(from, to));
        let p = find(&ps, needle);
        assert!(p.line > 0 && p.column > 0, "{p:?}");
        assert!(!p.hint.is_empty());
    }
    let y = format!(
        "controller:\n  pool_slice: \"2/2\"\n{BASE}leases: {{ default_ms: 5000, max_ms: 1000 }}\n"
    );
    let ps = problems(&y);
    assert_eq!(find(&ps, "pool_slice").line, 2);
    assert_eq!(find(&ps, "above max_ms").line, 19);
}

#[test]
fn rate_settings_are_checked_where_written() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "key_id: 1 }\n",
            "key_id: 1 }\n    budget: 0\n",
            "has budget 0",
        ),
        (
            "    parent: \"ff15::5c:0:1\"\n",
            "    parent: \"ff15::5c:0:1\"\n    preenumerate: sometimes\n",
            "is not none, all or { top: N }",
        ),
        (
            "    parent: \"ff15::5c:0:1\"\n",
            "    parent: \"ff15::5c:0:1\"\n    replicas: 3\n",
            "replicas 3 but 1 members",
        ),
    ];
    for (from, to, needle) in cases {
        assert!(BASE.contains(from), "{from}");
        let ps = problems(&BASE.replace(from, to));
        let p = find(&ps, needle);
        assert!(p.line > 0 && p.column > 0, "{p:?}");
        assert!(!p.hint.is_empty());
    }
    let more = |tail: &str| problems(&format!("{BASE}{tail}"));
    find(&more("budgets: { default: 0 }\n"), "budgets.default is 0");
    find(
        &more("budgets: { miss_reserve_percent: 101 }\n"),
        "miss_reserve_percent 101",
    );
    find(
        &more("leases: { hold_ms: 10 }\n"),
        "hold_ms 10 is below 1000",
    );
    find(
        &more("budgets: { defualt: 5 }\n"),
        "unknown key `defualt` in `budgets`",
    );
    // Accepted forms, and what they become.
    let d = example_copy();
    let y = BASE.replace(
        "    parent: \"ff15::5c:0:1\"\n",
        "    parent: \"ff15::5c:0:1\"\n    replicas: 1\n    preenumerate: { top: 5 }\n",
    ) + "leases: { warm_ms: 0, hold_ms: 2000, max_per_credential: 7 }\nbudgets: { default: 64, miss_reserve_percent: 10 }\n";
    let (c, _) = config::load_str(&y, d.path()).unwrap();
    assert_eq!(c.groups[0].preenumerate, config::Preenumerate::Top(5));
    assert_eq!(c.warm, std::time::Duration::ZERO);
    assert_eq!(c.hold, std::time::Duration::from_millis(2000));
    assert_eq!(
        (
            c.max_leases_per_credential,
            c.default_budget,
            c.miss_reserve_percent
        ),
        (7, 64, 10)
    );
}

#[test]
fn pool_slice_splits_the_pool() {
    let d = example_copy();
    let y = format!("controller:\n  pool_slice: \"1/2\"\n  database: \":memory:\"\n{BASE}");
    let (c, _) = config::load_str(&y, d.path()).unwrap();
    assert_eq!(c.pool_slice, (1, 2));
    assert_eq!(c.database, None);
    let mut p = subcast_controller::pool::Pool::new(&c.vlans[&10].pool, 1, 2);
    assert_eq!(p.size(), 32768);
    assert_eq!(p.allocate(), Some("ff15::5c:1:8000".parse().unwrap()));
}

#[test]
fn check_config_binary() {
    let bin = env!("CARGO_BIN_EXE_subcast-controller");
    let d = example_copy();
    let ok = std::process::Command::new(bin)
        .arg("check-config")
        .arg(d.path().join("controller.yaml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (1 VLANs, 3 switches, 2 groups"));
    let bad = d.path().join("bad.yaml");
    std::fs::write(
        &bad,
        BASE.replace("parent: \"ff15::5c:0:1\"", "parent: \"fd00::1\""),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:14:13: error: parent fd00::1 of group g is not a multicast address"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}
