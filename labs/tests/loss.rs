//! Repair under loss (issue 19, part 2): a rendezvous put-get on the seed topology
//! with every link losing 1 % and 5 % of UDP datagrams (each direction) must still
//! read back the identical object, and every chunk (data and manifest) must end up
//! on exactly R = 3 nodes: counted as chunk files in the nodes' store directories
//! by `subcast-lab`, outside the node processes. Runs the real `subcast-lab`
//! binary and daemons (build them first:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`).

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod common;
use common::daemons_dir;
use std::path::PathBuf;

/// The seed topology with `loss_pct: PCT` on every link, in a directory of
/// its own (removed by the caller).
fn lossy_seed(pct: f64) -> PathBuf {
    let seed = std::fs::read_to_string(labs::topology_path("seed-three-switch.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("labs-loss-test-{}-{pct}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!("seed-loss-{pct}.yaml"));
    std::fs::write(
        &f,
        format!("# seed-three-switch.yaml with loss on every link\nloss_pct: {pct}\n{seed}"),
    )
    .unwrap();
    f
}

fn put_get_under_loss(pct: f64) {
    if !labs::lab_tests_enabled() {
        println!("SKIP put-get at {pct}% loss: needs root and iproute2");
        return;
    }
    let topo = lossy_seed(pct);
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args(["run", &topo.display().to_string(), "--scenario", "put-get"])
        // Three data chunks and a manifest.
        .args(["--object-size", &(3 << 20).to_string(), "--json"])
        .arg("--bin-dir")
        .arg(daemons_dir())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    if let Some(dir) = topo.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("put-get at {pct}% loss: {:?}", t0.elapsed());
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("put-get at {pct}% loss gave no JSON report ({e}):\n{stdout}\n{stderr}")
    });
    let dropped = v["loss"]["total"].as_u64().unwrap_or(0);
    println!(
        "{dropped} datagrams dropped; put {:.0} ms; egress {} B for {} B; stored {}",
        v["put"]["ms"].as_f64().unwrap_or(f64::NAN),
        v["sender_egress_bytes"],
        v["payload_bytes"],
        v["stored"]["not_exactly_r"]
    );
    assert_eq!(
        v["get"]["ok"], true,
        "at {pct}% loss the object read back is not identical: {}\n(stderr: {stderr})",
        v["get"]["detail"]
    );
    assert_eq!(
        v["stored"]["ok"],
        true,
        "at {pct}% loss not every chunk is on exactly R=3 nodes: {} data chunk(s) of {}, \
         {} manifest(s), off: {}\nholders: {:#}",
        v["stored"]["data_chunks"],
        v["stored"]["expected_data_chunks"],
        v["stored"]["manifests"],
        v["stored"]["not_exactly_r"],
        v["stored"]["chunks"]
    );
    assert!(
        dropped > 0,
        "the loss rules dropped nothing: {:#}",
        v["loss"]
    );
}

#[test]
fn rendezvous_put_get_at_1_pct_loss_stores_every_chunk_on_exactly_3_nodes() {
    put_get_under_loss(1.0);
}

#[test]
fn rendezvous_put_get_at_5_pct_loss_stores_every_chunk_on_exactly_3_nodes() {
    put_get_under_loss(5.0);
}
