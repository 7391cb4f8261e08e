//! `subcast-controller`: serve, or check a config file.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use subcast_controller::config::{self, Problem, Severity};

#[derive(Debug, Parser)]
#[command(
    name = "subcast-controller",
    version,
    about = "Leases rendezvous groups and pushes them to switch agents"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the controller (UDP for agents and storage nodes, HTTP API).
    Serve {
        /// Config file; without it, the embedded lab default is used.
        #[arg(long, short, env = "SUBCAST_CONTROLLER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file and print every problem with line and column.
    CheckConfig { file: PathBuf },
    /// Print the embedded default config (a starting point).
    DefaultConfig,
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    #[command(flatten)]
    Inspect(subcast_controller::cli::Inspect),
}

fn print_problems(file: &str, problems: &[Problem]) {
    for p in problems {
        eprintln!("{}", p.render(file));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { file } => {
            let name = file.display().to_string();
            match config::load_file(&file) {
                Ok((c, warnings)) => {
                    print_problems(&name, &warnings);
                    println!(
                        "{name}: ok ({} VLANs, {} switches, {} groups, {} warnings)",
                        c.vlans.len(),
                        c.switches.len(),
                        c.groups.len(),
                        warnings.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    print_problems(&name, &problems);
                    let n = problems
                        .iter()
                        .filter(|p| p.severity == Severity::Error)
                        .count();
                    eprintln!("{name}: {n} errors");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Cmd::Openapi => {
            match serde_json::to_string_pretty(&subcast_controller::api::openapi_doc()) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Inspect(cmd) => match inspect(&cmd) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Serve { config } => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn inspect(cmd: &subcast_controller::cli::Inspect) -> anyhow::Result<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(subcast_controller::cli::run(cmd))
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (name, loaded) = match &path {
        Some(p) => (p.display().to_string(), config::load_file(p)),
        None => ("(embedded default)".to_owned(), config::load_default()),
    };
    let (cfg, warnings) = match loaded {
        Ok(x) => x,
        Err(problems) => {
            print_problems(&name, &problems);
            anyhow::bail!("{name} has errors; run `subcast-controller check-config {name}`");
        }
    };
    for w in &warnings {
        tracing::warn!("{}", w.render(&name));
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let running = subcast_controller::start(cfg).await?;
        tracing::info!(udp = %running.udp_addr, api = %running.api_addr, config = %name, "subcast-controller running");
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; break }
                _ = term.recv() => break,
                _ = hup.recv() => match running.controller.reload().await {
                    Ok(r) => {
                        for w in &r.warnings {
                            tracing::warn!("{w}");
                        }
                        tracing::info!(file = %r.file, changes = ?r.changes, "SIGHUP: config reloaded");
                    }
                    Err(e) => tracing::error!("SIGHUP: reload not applied: {e}"),
                },
            }
        }
        tracing::info!("stopping");
        running.stop();
        Ok(())
    })
}
