//! What real snmpd (net-snmp 5.9) does with a SET PDU whose middle varbind is refused by
//! the pass_persist handler, and what the handler makes of it (see
//! `src/passpersist/set_pdu.rs`). Driven by net-snmp's own `snmpset`. Needs root.
//! Run: `cargo test -p subcast-snmp --test handler_atomicity`.
//!
//! Findings pinned here: snmpd answers with the status and index of the first refused
//! varbind; it still sends the `set`s of the varbinds *after* the refused one (the handler
//! logs that it refused them); and the handler puts back the rows the PDU changed before
//! the refusal, so the bridge holds what it held before the PDU.

use std::path::PathBuf;
use std::process::Command;
use subcast_snmp::testlab::{COMMUNITY_RW, Lab};

/// The handler under test (`SUBCAST_QBRIDGE_PASSPERSIST` runs these tests against another
/// build: the handler before the rollback fails them).
fn handler() -> PathBuf {
    std::env::var("SUBCAST_QBRIDGE_PASSPERSIST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_subcast-qbridge-passpersist")))
}

const ENTRY: &str = ".1.3.6.1.2.1.17.7.1.3.2.1";

/// OID of column `col` of the row for MAC 33:33:00:09:00:`last`.
fn col(col: u32, last: u8) -> String {
    format!("{ENTRY}.{col}.1.51.51.0.9.0.{last}.0")
}

/// A one-octet PortList naming port `p` (1..=8).
fn port_bits(p: u16) -> String {
    format!("{:02x}", 0x80u8 >> (p - 1))
}

/// Runs `snmpset` with `(oid, type, value)` triples; returns (success, stdout + stderr).
fn snmpset(lab: &Lab, vbs: &[(String, &str, String)]) -> (bool, String) {
    let mut cmd = Command::new("snmpset");
    cmd.args(["-v2c", "-c", COMMUNITY_RW, "-On", "-t", "5", "-r", "0"])
        .arg(lab.address())
        .env("MIBS", "");
    for (o, t, v) in vbs {
        cmd.args([o.as_str(), t, v.as_str()]);
    }
    let out = cmd
        .output()
        .expect("run snmpset (is the snmp package installed?)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Permanent MDB entries of our test groups (ff3e::9:*).
fn ours(lab: &Lab) -> Vec<(String, String)> {
    lab.static_mdb()
        .into_iter()
        .filter(|(g, _)| g.starts_with("ff3e::9:"))
        .collect()
}

fn status_of(lab: &Lab, last: u8) -> String {
    let out = Command::new("snmpget")
        .args(["-v2c", "-c", COMMUNITY_RW, "-On", "-Oqv"])
        .arg(lab.address())
        .arg(col(5, last))
        .env("MIBS", "")
        .output()
        .expect("snmpget");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn handler_log(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("handler.log")).unwrap_or_default()
}

#[test]
fn a_refused_varbind_leaves_the_bridge_as_before_the_pdu() {
    let mut lab = Lab::new(2);
    lab.start_snmpd(&handler());
    let p1 = lab.port_no(&lab.hosts[0]);
    let p2 = lab.port_no(&lab.hosts[1]);
    let (v1, v2) = (
        lab.hosts[0].bridge_if.clone(),
        lab.hosts[1].bridge_if.clone(),
    );

    // Before: row 1 on port p1 (snmpd may need a moment to start its handler).
    let t0 = std::time::Instant::now();
    loop {
        let (ok, text) = snmpset(&lab, &[(col(3, 1), "x", port_bits(p1))]);
        if ok {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "snmpd does not answer: {text}"
        );
    }
    let before = ours(&lab);
    assert_eq!(before, vec![("ff3e::9:1".to_string(), v1.clone())]);

    // One PDU: row 1 -> p2, row 2 -> port 9 (the bridge has 2 ports), row 3 -> p1.
    let (ok, text) = snmpset(
        &lab,
        &[
            (col(3, 1), "x", port_bits(p2)),
            (col(5, 1), "i", "3".into()),
            (col(3, 2), "x", "0080".into()),
            (col(5, 2), "i", "3".into()),
            (col(3, 3), "x", port_bits(p1)),
            (col(5, 3), "i", "3".into()),
        ],
    );
    assert!(!ok, "the PDU must be refused: {text}");
    // snmpd reports the first refused varbind: row 2's egress ports, wrongValue.
    assert!(text.contains("wrongValue"), "{text}");
    assert!(
        text.contains(&format!("Failed object: {}", col(3, 2))),
        "{text}"
    );
    // Nothing of the PDU stays: row 1 is back on p1, rows 2 and 3 do not exist.
    assert_eq!(ours(&lab), before, "bridge changed by a refused PDU");
    assert_eq!(status_of(&lab, 2), "2", "row 2 must not exist (invalid)");
    assert_eq!(status_of(&lab, 3), "2", "row 3 must not exist (invalid)");
    // snmpd did send the sets after the refused one: the handler refused them.
    let log = handler_log(&lab);
    assert!(
        log.contains("not applied: an earlier varbind of this SET failed"),
        "{log}"
    );
    assert!(log.contains("row put back"), "{log}");

    // Status first, then a bad egress in the same row: the row is not created.
    let (ok, text) = snmpset(
        &lab,
        &[
            (col(5, 4), "i", "3".into()),
            (col(3, 4), "x", "0080".into()),
        ],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("Failed object: {}", col(3, 4))),
        "{text}"
    );
    assert_eq!(
        status_of(&lab, 4),
        "2",
        "a refused row must not be left empty"
    );

    // The next PDU is applied normally.
    let (ok, text) = snmpset(
        &lab,
        &[
            (col(3, 3), "x", port_bits(p2)),
            (col(5, 3), "i", "3".into()),
            (col(5, 1), "i", "2".into()),
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(ours(&lab), vec![("ff3e::9:3".to_string(), v2)]);
}
