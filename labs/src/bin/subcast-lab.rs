//! `subcast-lab`: check a topology file, or bring a lab up until Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use labs::{Lab, LabOptions, Topology};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(about = "Network-namespace labs for subcast")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Validate a topology file and print what it describes.
    Check {
        /// Topology YAML file.
        file: PathBuf,
    },
    /// Build the lab, print it as JSON, keep it until Ctrl-C, SIGTERM or --seconds,
    /// then remove everything.
    Up {
        /// Topology YAML file.
        file: PathBuf,
        /// Drop MLD reports from host ports and pin solicited-node groups.
        #[arg(long)]
        close_mld: bool,
        /// Install static entries for the topology's negotiating groups.
        #[arg(long)]
        static_groups: bool,
        /// Tear down after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Check { file } => {
            let t = Topology::from_yaml_file(&file)?;
            println!(
                "{}: {} switches, {} trunks, {} hosts, {} negotiating groups: OK",
                file.display(),
                t.switches.len(),
                t.links.len(),
                t.hosts.len(),
                t.negotiating_groups.len()
            );
            for s in t.switches.keys() {
                println!(
                    "  switch {s}: hosts {:?}, trunks to {:?}",
                    t.hosts_on(s),
                    t.neighbours(s)
                );
            }
            for g in t.negotiating_groups.keys() {
                let addr = t
                    .group_address(g)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                println!(
                    "  group {g} = {addr}: {:?}",
                    t.negotiating_groups[g].members
                );
            }
            Ok(())
        }
        Cmd::Up {
            file,
            close_mld,
            static_groups,
            seconds,
        } => {
            if !labs::lab_tests_enabled() {
                anyhow::bail!("building a lab needs root and iproute2");
            }
            let topo = Topology::from_yaml_file(&file)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                // Handlers first, so a signal during the build still tears down after it.
                let mut int = signal(SignalKind::interrupt())?;
                let mut term = signal(SignalKind::terminate())?;
                let opts = LabOptions {
                    close_mld,
                    static_negotiating_groups: static_groups,
                    ..LabOptions::default()
                };
                let lab = tokio::task::spawn_blocking(move || Lab::build(&topo, opts))
                    .await?
                    .context("building the lab")?;
                println!("{}", serde_json::to_string_pretty(&lab.describe())?);
                let wait = seconds.map_or(Duration::MAX, Duration::from_secs);
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                tracing::info!(prefix = lab.prefix(), "tearing down");
                drop(lab);
                Ok(())
            })
        }
    }
}
