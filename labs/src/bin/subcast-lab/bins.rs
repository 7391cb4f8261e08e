//! Finding (and if needed building) the daemons the lab runs: `subcast-agent`,
//! `subcast-controller` and `subcast-node`, and for `backend: snmp` switches the
//! Q-BRIDGE-MIB handler snmpd runs, `subcast-qbridge-passpersist` (package
//! `subcast-snmp`), looked for in the same directory.
//!
//! Search order for each binary:
//! 1. `--bin-dir DIR` / `SUBCAST_BIN_DIR=DIR` (only there: an explicit choice is not
//!    second-guessed);
//! 2. the directory of the running `subcast-lab` (`target/release` when started with
//!    `cargo run --release`, `target/debug` otherwise);
//! 3. `$CARGO_TARGET_DIR/{release,debug}`, then `<workspace>/target/{release,debug}`.
//!
//! When one is missing (a fresh clone), `subcast-lab` runs
//! `cargo build [--release] -p subcast-agent -p subcast-controller -p subcast-node
//! -p subcast-snmp --bins` in the workspace it was built from (release if it runs from
//! a `release` directory) and searches again. `--build` always runs that build first (cheap when up to date),
//! `--no-build` never does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The daemon binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub agent: PathBuf,
    pub controller: PathBuf,
    pub node: PathBuf,
    /// `subcast-qbridge-passpersist`, if it is next to the daemons (required only
    /// by topologies with `backend: snmp` switches).
    pub snmp_handler: Option<PathBuf>,
}

const NAMES: [&str; 3] = ["subcast-agent", "subcast-controller", "subcast-node"];
/// snmpd's pass_persist handler for `backend: snmp` switches.
pub const SNMP_HANDLER: &str = "subcast-qbridge-passpersist";
/// The packages `cargo_build` builds.
const PACKAGES: [&str; 4] = [
    "subcast-agent",
    "subcast-controller",
    "subcast-node",
    "subcast-snmp",
];

/// How to find the binaries.
#[derive(Debug, Clone, Default)]
pub struct Locate {
    /// Explicit directory (flag or env).
    pub bin_dir: Option<PathBuf>,
    /// Run cargo build first, even if all are found.
    pub build: bool,
    /// Never run cargo.
    pub no_build: bool,
}

/// The workspace root this binary was compiled in.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn release_profile() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.ends_with("release")))
        .unwrap_or(false)
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(d.clone());
        // Test binaries live in target/<profile>/deps.
        if d.ends_with("deps")
            && let Some(p) = d.parent()
        {
            dirs.push(p.to_path_buf());
        }
    }
    let order: [&str; 2] = if release_profile() {
        ["release", "debug"]
    } else {
        ["debug", "release"]
    };
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        for p in order {
            dirs.push(Path::new(&t).join(p));
        }
    }
    for p in order {
        dirs.push(workspace_root().join("target").join(p));
    }
    dirs
}

/// The first directory holding the three daemons (and the SNMP handler too, when
/// `need_handler`).
fn find_in(dirs: &[PathBuf], need_handler: bool) -> Option<Binaries> {
    for d in dirs {
        let paths: Vec<PathBuf> = NAMES.iter().map(|n| d.join(n)).collect();
        let handler = Some(d.join(SNMP_HANDLER)).filter(|p| p.is_file());
        if paths.iter().all(|p| p.is_file()) && (handler.is_some() || !need_handler) {
            return Some(Binaries {
                agent: paths[0].clone(),
                controller: paths[1].clone(),
                node: paths[2].clone(),
                snmp_handler: handler,
            });
        }
    }
    None
}

/// What a directory must hold, for messages.
fn wanted(need_handler: bool) -> String {
    let mut v: Vec<&str> = NAMES.to_vec();
    if need_handler {
        v.push(SNMP_HANDLER);
    }
    format!("{v:?}")
}

/// The cargo command that builds everything `subcast-lab` runs.
pub fn build_command() -> String {
    let p: Vec<String> = PACKAGES.iter().map(|p| format!("-p {p}")).collect();
    format!("cargo build {} --bins", p.join(" "))
}

/// Build the three daemons with cargo in the workspace this binary came from.
fn cargo_build() -> Result<()> {
    let root = workspace_root();
    if !root.join("Cargo.toml").is_file() {
        bail!(
            "the daemons are missing and the workspace {} is gone: build them and pass \
             --bin-dir DIR (or SUBCAST_BIN_DIR)",
            root.display()
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(&cargo);
    c.current_dir(&root).arg("build");
    if release_profile() {
        c.arg("--release");
    }
    for n in PACKAGES {
        c.args(["-p", n]);
    }
    c.arg("--bins");
    eprintln!(
        "subcast-lab: building the daemons: {}{} (in {})",
        build_command(),
        if release_profile() { " --release" } else { "" },
        root.display()
    );
    let st = c
        .status()
        .with_context(|| format!("running `{cargo} build` (is cargo on PATH?)"))?;
    if !st.success() {
        bail!("`cargo build` of the daemons failed ({st}); fix the build or pass --bin-dir");
    }
    Ok(())
}

/// Find what a lab of `topo` runs (building it if needed and allowed): the three
/// daemons, and the SNMP handler when it has `backend: snmp` switches.
pub fn locate_for(opts: &Locate, topo: &labs::Topology) -> Result<Binaries> {
    let snmp = topo
        .switches
        .values()
        .any(|s| s.backend == labs::Backend::Snmp);
    locate_with(opts, snmp)
}

fn locate_with(opts: &Locate, need_handler: bool) -> Result<Binaries> {
    let want = wanted(need_handler);
    let explicit = opts
        .bin_dir
        .clone()
        .or_else(|| std::env::var_os("SUBCAST_BIN_DIR").map(PathBuf::from));
    if let Some(dir) = explicit {
        return find_in(std::slice::from_ref(&dir), need_handler).with_context(|| {
            format!(
                "{} does not hold all of {want}: build them ({}) or fix --bin-dir / \
                 SUBCAST_BIN_DIR",
                dir.display(),
                build_command()
            )
        });
    }
    if opts.build && !opts.no_build {
        cargo_build()?;
    }
    let dirs = candidate_dirs();
    if let Some(b) = find_in(&dirs, need_handler) {
        return Ok(b);
    }
    if opts.no_build {
        bail!(
            "cannot find {want} in any of {dirs:?}: build them ({}) or pass --bin-dir DIR",
            build_command()
        );
    }
    cargo_build()?;
    find_in(&dirs, need_handler)
        .with_context(|| format!("built the daemons but cannot find {want} in {dirs:?}"))
}
