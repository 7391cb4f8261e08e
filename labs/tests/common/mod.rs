//! Helpers shared by the lab tests that run `subcast-lab` with the daemons.

use std::path::PathBuf;
use std::process::Command;

/// The directory of `subcast-lab`, where the daemons must have been built.
pub fn daemons_dir() -> PathBuf {
    let lab = PathBuf::from(env!("CARGO_BIN_EXE_subcast-lab"));
    let dir = lab.parent().unwrap().to_path_buf();
    for b in ["subcast-agent", "subcast-controller", "subcast-node"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: run `cargo build -p subcast-agent -p subcast-controller \
             -p subcast-node --bins` before this test",
            dir.join(b).display()
        );
    }
    dir
}

/// Runs `subcast-lab ARGS` (with RUST_LOG=warn) and returns what it printed.
#[allow(dead_code)] // not every test that includes this module runs it bare
pub fn subcast_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// The JSON report in `out`; fails the test, with the output, when there is
/// no report or the run failed.
#[allow(dead_code)]
pub fn json_report(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(out.status.success(), "subcast-lab failed: {stderr}\n{v:#}");
    v
}

/// Runs `subcast-lab ARGS --bin-dir <daemons>` (with RUST_LOG=warn) and
/// returns its JSON report; fails the test, with the output, when there is
/// no report or the run failed.
#[allow(dead_code)] // not every test that includes this module runs scenarios
pub fn lab_json(args: &[&str]) -> serde_json::Value {
    let dir = daemons_dir();
    let mut all = args.to_vec();
    all.extend(["--bin-dir", dir.to_str().unwrap()]);
    json_report(&subcast_lab(&all))
}
