//! `subcast-node default-config` prints a config that the node's own
//! loader accepts as written (with a `node:` section for `serve` and a
//! metrics address).

use std::process::Command;

#[test]
fn default_config_validates_as_written() {
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-node"))
        .arg("default-config")
        .output()
        .expect("subcast-node runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("node.yaml");
    std::fs::write(&p, &text).unwrap();
    let c = subcast_node::config::Config::load(&p)
        .unwrap_or_else(|e| panic!("default-config does not validate: {e:#}\n{text}"));
    let n = c.node().expect("a node section");
    assert!(n.metrics.is_some(), "the default serves metrics");
}
