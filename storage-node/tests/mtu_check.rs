//! A configured `mtu` larger than the interface's is refused before any
//! socket opens, with the fix in the message. DATA datagrams are sized to
//! the configured MTU and go without fragmentation, so on a smaller link
//! every one was refused by the kernel (EMSGSIZE) and no put could finish.
//! The interface is one end of a veth pair of MTU 1280 in a namespace of the test's own.
//! Needs root; skipped otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use labs::cmd::run;

/// A namespace with interface `d0` (a veth, peer `d1`) of MTU 1280, deleted on drop.
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let ns = Ns(format!("scmtu-{}", std::process::id()));
        run(&["ip", "netns", "add", &ns.0]).expect("ip netns add");
        run(&[
            "ip", "-n", &ns.0, "link", "add", "d0", "mtu", "1280", "type", "veth", "peer", "name",
            "d1", "mtu", "1280",
        ])
        .expect("veth pair");
        run(&["ip", "-n", &ns.0, "link", "set", "d0", "up"]).expect("link up");
        ns
    }

    fn check_config(&self, config: &Path) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(env!("CARGO_BIN_EXE_subcast-node"))
            .arg("--config")
            .arg(config)
            .arg("check-config")
            .output()
            .expect("subcast-node runs")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

fn node(args: &[&str], dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-node"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("subcast-node runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
}

#[test]
fn an_mtu_larger_than_the_interfaces_is_refused_with_the_fix() {
    if common::skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    node(&["keys", "secret", "--out", "cluster.secret"], d);
    node(
        &[
            "keys",
            "derive",
            "--secret",
            "cluster.secret",
            "--node",
            "100",
            "--peers",
            "1-3,100",
            "--out",
            "client.keys",
        ],
        d,
    );
    let config = |mtu: u32| {
        let p = d.join(format!("client-{mtu}.yaml"));
        std::fs::write(
            &p,
            format!(
                "negotiating_groups: [\"ff05::5c:1:1\"]\ninterface: d0\nmtu: {mtu}\n\
                 keys: {{file: client.keys}}\n"
            ),
        )
        .unwrap();
        p
    };
    let ns = Ns::new();

    let out = ns.check_config(&config(1500));
    assert!(
        !out.status.success(),
        "mtu 1500 on a 1280 link accepted: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`mtu: 1500`")
            && err.contains("MTU of d0 (1280)")
            && err.contains("set `mtu: 1280`"),
        "{err}"
    );

    let out = ns.check_config(&config(1280));
    assert!(
        out.status.success(),
        "mtu 1280 on a 1280 link refused: {out:?}"
    );
}
