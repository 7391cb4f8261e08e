//! `subcast-lab run TOPOLOGY --scenario multi-site`, for real (issue 15): a lab
//! per site, a gateway per site, shaped veths between the gateways. A put at one
//! site is read back, byte for byte, at every other; each chunk crosses each
//! site link at most once per direction (the gateways' counts, beside the
//! veths' own byte counters); nothing moves once every site has the object; a
//! cut link's catch-up moves only what the other side lacks.
//! Needs root (skips otherwise, fails under SUBCAST_LABS_REQUIRED) and the
//! daemons: `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.

use serde_json::Value;

mod common;
use common::lab_json;

const SIZE: u64 = 3_000_000;
/// Three 1 MiB data chunks and the manifest.
const CHUNKS: u64 = 4;

fn run(topology: &str, extra: &[&str]) -> Value {
    let size = SIZE.to_string();
    let mut args = vec![
        "run",
        topology,
        "--scenario",
        "multi-site",
        "--object-size",
        &size,
        "--json",
    ];
    args.extend_from_slice(extra);
    lab_json(&args)
}

/// What every run must show.
fn check(v: &Value, sites: &[&str], links: &[&str]) {
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["chunks"], CHUNKS, "{v:#}");
    for s in sites {
        assert_eq!(v["sites"][s]["get"]["ok"], true, "site {s}: {v:#}");
        assert!(v["sites"][s]["converged_ms"].is_u64(), "site {s}: {v:#}");
    }
    let mut into: u64 = 0;
    for l in links {
        let x = &v["site_links"][l];
        for d in ["ab", "ba"] {
            let c = x[format!("chunks_{d}")].as_u64().unwrap();
            let b = x[format!("bytes_{d}")].as_u64().unwrap();
            let wire = x[format!("wire_bytes_{d}")].as_u64().unwrap();
            // At most once per direction.
            assert!(c <= CHUNKS, "link {l} {d}: {c} chunks: {v:#}");
            into += c;
            // The veth saw what the gateway says it sent (plus TCP/IP
            // headers, inventories and pings), not more chunks.
            assert!(wire >= b, "link {l} {d}: wire {wire} < gateway {b}");
            assert!(
                wire <= b + b / 20 + 256 * 1024,
                "link {l} {d}: wire {wire} far above the gateway's {b}: {v:#}"
            );
        }
    }
    // Every other site got every chunk over some link.
    assert!(into >= CHUNKS * (sites.len() as u64 - 1), "{v:#}");
    assert_eq!(
        v["checks"]["quiet_after_convergence"], true,
        "chunks still moving after every site had them: {v:#}"
    );
}

fn site(name: &str) -> String {
    let n = name.to_lowercase();
    format!(
        "  {name}:\n    switches: {{S{n}: {{}}}}\n    hosts: {{{n}1: {{switch: S{n}}}, {n}2: {{switch: S{n}}}, {n}3: {{switch: S{n}}}, {n}gw: {{switch: S{n}}}}}\n    negotiating_groups: {{NG0: {{members: [{n}1, {n}2, {n}3]}}}}\n"
    )
}

/// A topology file this crate does not ship (removed when dropped).
struct Generated(std::path::PathBuf);

impl Drop for Generated {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn generated(tag: &str, sites: &[&str], links: &[(&str, &str)], rate: u32) -> Generated {
    let mut y = format!("rate_mbit: {rate}\nsites:\n");
    for s in sites {
        y += &site(s);
    }
    y += "site_links:\n";
    for (a, b) in links {
        y += &format!("  - [{a}, {b}]\n");
    }
    let p = std::env::temp_dir().join(format!("multi-site-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&p, y).unwrap();
    Generated(p)
}

#[test]
fn triangle_put_at_a_read_at_b_and_c() {
    if !labs::lab_tests_enabled() {
        println!("SKIP: needs root and iproute2");
        return;
    }
    let v = run("three-sites.yaml", &[]);
    check(&v, &["A", "B", "C"], &["A-B", "B-C", "C-A"]);
    // Both links of the source carry chunks (no link is switched off);
    // together at least one copy of each (a chunk C announced, having got
    // it over B first, is not sent from A to C).
    let (ab, ac) = (
        v["site_links"]["A-B"]["chunks_ab"].as_u64().unwrap(),
        v["site_links"]["C-A"]["chunks_ba"].as_u64().unwrap(),
    );
    assert!(ab >= 1 && ac >= 1 && ab + ac >= CHUNKS, "{v:#}");

    // Cut A-B during the put: B converges over C; when the link is back,
    // nothing is missing and nothing moves.
    let v = run("three-sites.yaml", &["--cut", "A-B"]);
    check(&v, &["A", "B", "C"], &["A-B", "B-C", "C-A"]);
    assert_eq!(v["site_links"]["A-B"]["chunks_ab"], 0, "{v:#}");
    assert_eq!(v["site_links"]["B-C"]["chunks_ab"], 0, "{v:#}");
    assert_eq!(v["site_links"]["B-C"]["chunks_ba"], CHUNKS, "{v:#}");
    assert_eq!(v["cut"]["missing_at_restore"], 0, "{v:#}");
    assert_eq!(v["cut"]["chunks_ab_after_restore"], 0, "{v:#}");
    assert_eq!(v["cut"]["chunks_ba_after_restore"], 0, "{v:#}");
}

#[test]
fn catch_up_moves_exactly_what_the_other_side_lacks() {
    if !labs::lab_tests_enabled() {
        println!("SKIP: needs root and iproute2");
        return;
    }
    // Two sites, one link, cut during the put: M lacks every chunk until
    // the link is back, and the catch-up moves each exactly once.
    let t = generated("pair", &["L", "M"], &[("L", "M")], 200);
    let v = run(t.0.to_str().unwrap(), &["--cut", "L-M"]);
    check(&v, &["L", "M"], &["L-M"]);
    assert_eq!(v["cut"]["missing_at_restore"], CHUNKS, "{v:#}");
    assert_eq!(v["cut"]["chunks_ab_after_restore"], CHUNKS, "{v:#}");
    assert_eq!(v["cut"]["chunks_ba_after_restore"], 0, "{v:#}");
    assert_eq!(v["site_links"]["L-M"]["catchup_queued_ab"], CHUNKS, "{v:#}");
}

#[test]
fn a_square_with_a_diagonal_from_another_site() {
    if !labs::lab_tests_enabled() {
        println!("SKIP: needs root and iproute2");
        return;
    }
    let links = [("P", "Q"), ("Q", "R"), ("R", "S"), ("S", "P"), ("P", "R")];
    let t = generated("square", &["P", "Q", "R", "S"], &links, 100);
    let v = run(t.0.to_str().unwrap(), &["--from", "Q"]);
    check(
        &v,
        &["P", "Q", "R", "S"],
        &["P-Q", "Q-R", "R-S", "S-P", "P-R"],
    );
    assert_eq!(v["from"], "Q");
}
