//! Finding (and if needed building) the daemons the lab runs: `subcast-agent`,
//! `subcast-controller` and `subcast-node`.
//!
//! Search order for each binary:
//! 1. `--bin-dir DIR` / `SUBCAST_BIN_DIR=DIR` (only there: an explicit choice is not
//!    second-guessed);
//! 2. the directory of the running `subcast-lab` (`target/release` when started with
//!    `cargo run --release`, `target/debug` otherwise);
//! 3. `$CARGO_TARGET_DIR/{release,debug}`, then `<workspace>/target/{release,debug}`.
//!
//! When one is missing (a fresh clone), `subcast-lab` runs
//! `cargo build [--release] -p subcast-agent -p subcast-controller -p subcast-node --bins`
//! in the workspace it was built from (release if it runs from a `release` directory)
//! and searches again. `--build` always runs that build first (cheap when up to date),
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
}

const NAMES: [&str; 3] = ["subcast-agent", "subcast-controller", "subcast-node"];

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

fn find_in(dirs: &[PathBuf]) -> Option<Binaries> {
    for d in dirs {
        let paths: Vec<PathBuf> = NAMES.iter().map(|n| d.join(n)).collect();
        if paths.iter().all(|p| p.is_file()) {
            return Some(Binaries {
                agent: paths[0].clone(),
                controller: paths[1].clone(),
                node: paths[2].clone(),
            });
        }
    }
    None
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
    for n in NAMES {
        c.args(["-p", n]);
    }
    c.arg("--bins");
    eprintln!(
        "subcast-lab: building the daemons: {cargo} build{} -p subcast-agent -p subcast-controller -p subcast-node --bins (in {})",
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

/// Find the three daemons, building them if needed and allowed.
pub fn locate(opts: &Locate) -> Result<Binaries> {
    let explicit = opts
        .bin_dir
        .clone()
        .or_else(|| std::env::var_os("SUBCAST_BIN_DIR").map(PathBuf::from));
    if let Some(dir) = explicit {
        return find_in(std::slice::from_ref(&dir)).with_context(|| {
            format!(
                "{} does not hold all of {NAMES:?}: build them (cargo build -p subcast-agent \
                 -p subcast-controller -p subcast-node --bins) or fix --bin-dir / SUBCAST_BIN_DIR",
                dir.display()
            )
        });
    }
    if opts.build && !opts.no_build {
        cargo_build()?;
    }
    let dirs = candidate_dirs();
    if let Some(b) = find_in(&dirs) {
        return Ok(b);
    }
    if opts.no_build {
        bail!(
            "cannot find {NAMES:?} in any of {dirs:?}: build them (cargo build -p subcast-agent \
             -p subcast-controller -p subcast-node --bins) or pass --bin-dir DIR"
        );
    }
    cargo_build()?;
    find_in(&dirs).with_context(|| format!("built the daemons but cannot find them in {dirs:?}"))
}
