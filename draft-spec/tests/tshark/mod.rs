#![allow(dead_code)] // each including test uses part of it
//! Running tshark with the subcast dissector (`wireshark/subcast.lua`), for
//! the tests that check it: `draft-spec/tests/dissector.rs` (the vectors)
//! and `labs/tests/dissector.rs` (a lab capture, which includes this file
//! with `#[path]`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set (non-empty, not `0`) in CI: a missing tshark fails instead of skipping.
const REQUIRE_ENV: &str = "SUBCAST_LABS_REQUIRED";

/// The dissector under test.
pub fn lua_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wireshark/subcast.lua")
}

/// The text of the dissector: `subcast.lua` and every part it loads
/// (`wireshark/subcast/*.lua`).
pub fn lua_sources() -> String {
    let entry = lua_script();
    let mut text = std::fs::read_to_string(&entry).expect("wireshark/subcast.lua");
    let dir = entry.with_file_name("subcast");
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .collect();
    parts.sort();
    assert!(!parts.is_empty(), "no parts in {}", dir.display());
    for p in parts {
        text.push_str(&std::fs::read_to_string(&p).expect("a part of the dissector"));
    }
    text
}

/// tshark's path, or `None` (after a skip line) when it is not installed.
/// Panics instead when `SUBCAST_LABS_REQUIRED` is set.
pub fn tshark(test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join("tshark"))
        .find(|p| p.is_file());
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        found.is_some() || !required,
        "{REQUIRE_ENV} is set but tshark is missing: apt-get install tshark"
    );
    if found.is_none() {
        println!("SKIP {test}: tshark is not installed (apt-get install tshark)");
    }
    found
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "subcast-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).expect("scratch directory");
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `tshark -n -X lua_script:wireshark/subcast.lua -r pcap ARGS` with a
/// private home directory (so a copy of the plugin installed in the user's
/// plugin folder is not loaded twice) and returns its standard output.
/// Fails on a non-zero exit or any Lua message on standard error (a script
/// that does not load).
pub fn run(tshark: &Path, pcap: &Path, args: &[&str]) -> String {
    let home = Scratch::new("tshark-home");
    let script = lua_script();
    let out = Command::new(tshark)
        .arg("-n")
        .arg("-X")
        .arg(format!("lua_script:{}", script.display()))
        .arg("-r")
        .arg(pcap)
        .args(args)
        .env("HOME", &home.0)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Running as user \"root\""))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "tshark on {} failed ({}):\n{}",
        pcap.display(),
        out.status,
        problems.join("\n")
    );
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}

/// `-T fields` output: one row per frame, one cell per field; repeated
/// occurrences of a field joined by `|`.
pub fn fields(tshark: &Path, pcap: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"];
    for n in names {
        args.push("-e");
        args.push(n);
    }
    run(tshark, pcap, &args)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Copies `pcap` to `$SUBCAST_KEEP_PCAP/NAME.pcap` when that variable names
/// a directory, to look at it with Wireshark afterwards.
pub fn keep(pcap: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("SUBCAST_KEEP_PCAP") {
        let to = Path::new(&dir).join(format!("{name}.pcap"));
        std::fs::copy(pcap, &to)
            .unwrap_or_else(|e| panic!("SUBCAST_KEEP_PCAP: copying to {}: {e}", to.display()));
        println!("kept {}", to.display());
    }
}
