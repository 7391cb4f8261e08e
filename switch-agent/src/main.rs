//! `subcast-agent`: the switch agent daemon.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use subcast_agent::config::{Config, KeyFile};

#[derive(Debug, Parser)]
#[command(
    name = "subcast-agent",
    version,
    about = "subcast switch agent: authenticated SET_SUBSET/CLEAR to forwarding state"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the agent (inside the switch's network namespace).
    Run(RunArgs),
    /// Print a commented default configuration (a starting point).
    DefaultConfig,
    /// Check a configuration file and its key files, then exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// A config file, flags, or both (flags win over the file).
#[derive(Debug, Clone, Args)]
struct RunArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long)]
    switch_id: Option<u32>,
    /// Linux bridge name (backend kind linux-bridge).
    #[arg(long)]
    bridge: Option<String>,
    #[arg(long)]
    controller: Option<SocketAddr>,
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// The agent's own key as ID:FILE.
    #[arg(long, value_parser = parse_key)]
    key: Option<KeyFile>,
    /// A controller key as ID:FILE (repeatable).
    #[arg(long = "controller-key", value_parser = parse_key)]
    controller_keys: Vec<KeyFile>,
    #[arg(long)]
    rendezvous_range: Option<ipnet::Ipv6Net>,
}

fn parse_key(s: &str) -> Result<KeyFile, String> {
    let (id, file) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected ID:FILE, e.g. 1:/etc/subcast/controller.key"))?;
    Ok(KeyFile {
        id: id
            .parse()
            .map_err(|_| format!("{id:?} is not a key id (u32)"))?,
        file: file.into(),
    })
}

fn build_config(a: RunArgs) -> anyhow::Result<Config> {
    let mut text = String::new();
    let path = a.config.clone().unwrap_or_else(|| PathBuf::from("<flags>"));
    if let Some(p) = &a.config {
        text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    }
    // Flags are applied on top of the file as YAML keys, so the same
    // checks and messages apply to both.
    let mut extra = Vec::new();
    if let Some(v) = a.switch_id {
        extra.push(format!("switch_id: {v}"));
    }
    if let Some(v) = &a.bridge {
        extra.push(format!("backend: {{ kind: linux-bridge, bridge: {v:?} }}"));
    }
    if let Some(v) = a.controller {
        extra.push(format!("controller: \"{v}\""));
    }
    if let Some(v) = a.listen {
        extra.push(format!("listen: \"{v}\""));
    }
    if let Some(v) = a.metrics {
        extra.push(format!("metrics: \"{v}\""));
    }
    if let Some(k) = &a.key {
        extra.push(format!("key: {{ id: {}, file: {:?} }}", k.id, k.file));
    }
    if !a.controller_keys.is_empty() {
        let ks: Vec<String> = a
            .controller_keys
            .iter()
            .map(|k| format!("{{ id: {}, file: {:?} }}", k.id, k.file))
            .collect();
        extra.push(format!("controller_keys: [{}]", ks.join(", ")));
    }
    if let Some(v) = a.rendezvous_range {
        extra.push(format!("rendezvous_range: \"{v}\""));
    }
    let merged = merge_yaml(&text, &extra);
    Ok(Config::parse(&merged, &path)?)
}

/// Replaces top-level keys of `text` by the `extra` lines (each `key: value`).
fn merge_yaml(text: &str, extra: &[String]) -> String {
    let keys: Vec<&str> = extra.iter().filter_map(|l| l.split(':').next()).collect();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top = !line.starts_with([' ', '\t', '#', '-']) && !line.is_empty();
        if top {
            skipping = keys.iter().any(|k| line.starts_with(&format!("{k}:")));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    for l in extra {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn check(path: &Path) -> anyhow::Result<()> {
    let c = Config::load(path)?;
    c.keyring()?;
    c.own_key()?;
    println!(
        "{}: ok (switch {}, {}, {} parent groups)",
        path.display(),
        c.switch_id,
        c.backend.describe(),
        c.parent_groups.len()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("subcast-agent: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { config } => check(&config),
        Cmd::DefaultConfig => {
            print!("{}", subcast_agent::config::DEFAULT_CONFIG);
            Ok(())
        }
        Cmd::Run(a) => {
            let cfg = build_config(a.clone())?;
            // SIGHUP reads the file again, with the same flags on top.
            let reload: subcast_agent::daemon::Reloader = Box::new(move || build_config(a.clone()));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(subcast_agent::daemon::run(cfg, Some(reload)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_yaml;

    #[test]
    fn flags_replace_top_level_keys_only() {
        let file =
            "switch_id: 1\nbackend:\n  kind: linux-bridge\n  bridge: br0\nlisten: \"[::]:7410\"\n";
        let out = merge_yaml(
            file,
            &[
                "switch_id: 7".into(),
                "backend: { kind: linux-bridge, bridge: \"br9\" }".into(),
            ],
        );
        assert!(!out.contains("switch_id: 1"));
        assert!(!out.contains("bridge: br0"));
        assert!(out.contains("switch_id: 7"));
        assert!(out.contains("listen:"));
        assert!(out.contains("br9"));
    }
}
