//! Build-and-teardown cycles that prove a lab build is deterministic: build a
//! topology (closed MLD, static negotiating groups: what `subcast-lab run` does),
//! tear it down, and check that nothing of it is left: no namespace, no process
//! whose command line names the lab, no scratch directory, no interface with one
//! of its port names in this (the host's) namespace.
//!
//! Used by `subcast-lab stress` and by `tests/stress.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::lab::{Lab, LabOptions};
use crate::netns;
use crate::topology::Topology;

/// Timings of one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// `Lab::build` until settled, milliseconds.
    pub build_ms: u64,
    /// Teardown until nothing is left, milliseconds.
    pub teardown_ms: u64,
}

/// The options `subcast-lab run` builds with.
pub fn run_options() -> LabOptions {
    LabOptions {
        close_mld: true,
        static_negotiating_groups: true,
        ..LabOptions::default()
    }
}

/// Build `topo` with `opts`, run `check` on the built lab, tear it down and verify
/// that nothing is left (see [`leftovers`]). Any failure, of the build, the check or
/// the cleanup, is an error.
pub fn cycle(
    topo: &Topology,
    opts: LabOptions,
    check: impl FnOnce(&Lab) -> Result<()>,
) -> Result<Cycle> {
    let t0 = Instant::now();
    let mut lab = Lab::build(topo, opts)?;
    let build_ms = t0.elapsed().as_millis() as u64;
    let prefix = lab.prefix().to_string();
    let ports: Vec<String> = lab
        .switches()
        .values()
        .flat_map(|s| s.ports.iter().map(|p| p.name.clone()))
        .collect();
    let checked = check(&lab);
    let t1 = Instant::now();
    lab.teardown();
    drop(lab);
    // Processes killed at teardown may take a moment to go: wait for it.
    let mut left = leftovers(&prefix, &ports);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = leftovers(&prefix, &ports);
    }
    let teardown_ms = t1.elapsed().as_millis() as u64;
    checked?;
    if !left.is_empty() {
        return Err(LabError::Unsupported(format!(
            "lab {prefix} left things behind after teardown: {}",
            left.join("; ")
        )));
    }
    Ok(Cycle {
        build_ms,
        teardown_ms,
    })
}

/// What is left of lab `prefix` (`slab<pid>-<n>`): namespaces named `<prefix>-*`,
/// processes whose command line contains `<prefix>-` or `<prefix>/` (`ip netns exec`,
/// tcpdump, OVS daemons with their run directory), the scratch directory, and
/// interfaces named like one of `ports` in the calling thread's namespace.
pub fn leftovers(prefix: &str, ports: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let dash = format!("{prefix}-");
    let slash = format!("{prefix}/");
    for ns in netns::list() {
        if ns.starts_with(&dash) {
            out.push(format!("namespace {ns}"));
        }
    }
    let me = std::process::id();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(&dash) || cmd.contains(&slash) {
                out.push(format!("process {pid} `{}`", cmd.trim()));
            }
        }
    }
    let dir = std::env::temp_dir().join(prefix);
    if dir.exists() {
        out.push(format!("directory {}", dir.display()));
    }
    if let Ok(rd) = std::fs::read_dir(Path::new("/sys/class/net")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if ports.contains(&name) {
                out.push(format!("interface {name} in the host namespace"));
            }
        }
    }
    out
}

/// What is left of every lab this process made (`slab<pid>-*`): namespaces,
/// processes naming one, scratch directories. For callers that run one lab at a
/// time (`subcast-lab stress`), also after a build that failed half way.
/// Processes killed at teardown can take a moment to go: this polls for up to 5 s.
pub fn process_leftovers() -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = process_leftovers_now();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn process_leftovers_now() -> Vec<String> {
    let needle = crate::build::process_prefix();
    let mut out = Vec::new();
    for ns in netns::list() {
        if ns.starts_with(&needle) {
            out.push(format!("namespace {ns}"));
        }
    }
    let me = std::process::id();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(format!("process {pid} `{}`", cmd.trim()));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&needle) {
                out.push(format!("directory {}", e.path().display()));
            }
        }
    }
    out
}

/// p-th quantile (0..=1) of `v` by nearest rank; `None` if empty.
pub fn quantile(v: &[u64], p: f64) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return None;
    }
    let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[5], 0.99), Some(5));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
    }

    #[test]
    fn nothing_is_left_of_a_lab_that_never_existed() {
        assert!(leftovers("slab0-nonexistent", &["h-none".into()]).is_empty());
    }
}
