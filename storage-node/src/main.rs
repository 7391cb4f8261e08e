use anyhow::Context;
use clap::Parser;
use subcast_node::cli::{Cli, Command};
use subcast_node::client::Client;
use subcast_node::config::Config;
use subcast_node::objects::{self, PutOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let cfg = Config::load(&cli.config)?;
    match cli.command {
        Command::Serve => subcast_node::daemon::serve(cfg).await,
        Command::CheckConfig => {
            cfg.key.load(&cfg.base_dir)?;
            if let Some(c) = &cfg.controller {
                c.key.load(&cfg.base_dir)?;
            }
            subcast_node::transport::ifindex(cfg.interface.as_deref())?;
            println!(
                "{}: ok ({} negotiating groups, R={}, transport {}{})",
                cli.config.display(),
                cfg.negotiating_groups.len(),
                cfg.replicas,
                cfg.transport.name(),
                cfg.node
                    .as_ref()
                    .map(|n| format!(", node {} storing in {}", n.id, n.store.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Put {
            file,
            name,
            transport,
            replicas,
            chunk_size,
            quiet,
            json,
        } => {
            let o = PutOptions {
                mode: transport.unwrap_or(cfg.transport),
                replicas: replicas.unwrap_or(cfg.replicas),
                chunk_size: chunk_size.unwrap_or(cfg.chunk_size),
                quiet,
            };
            anyhow::ensure!(o.replicas >= 1, "--replicas must be at least 1");
            anyhow::ensure!(
                (1..=16 << 20).contains(&o.chunk_size),
                "--chunk-size must be 1 byte to 16 MiB"
            );
            let mut c = Client::new(cfg).await?;
            let r = objects::put_object(&mut c, &file, &name, &o)
                .await
                .with_context(|| format!("put of {} as {name:?} failed", file.display()))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else if !quiet {
                println!(
                    "{} version {}: {} bytes, {} chunks, R={}, {} in {:.2} s ({:.1} MiB/s), {:.3} wire bytes per byte",
                    r.name,
                    r.version,
                    r.size,
                    r.chunks,
                    r.replicas,
                    r.transport,
                    r.seconds,
                    r.mib_per_s,
                    r.wire_bytes_per_payload_byte
                );
            }
            Ok(())
        }
        Command::Get {
            name,
            output,
            version,
            quiet,
            json,
        } => {
            let mut c = Client::new(cfg).await?;
            let r = objects::get_object(&mut c, &name, version, &output, quiet)
                .await
                .with_context(|| format!("get of {name:?} failed"))?;
            for (node, chunk) in &r.corrupt_reports {
                eprintln!(
                    "warning: node {node} held a corrupt copy of chunk {chunk} (quarantined there; served from another node)"
                );
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else if !quiet {
                println!(
                    "{} version {}: {} bytes in {:.2} s ({:.1} MiB/s) -> {}",
                    r.name,
                    r.version,
                    r.size,
                    r.seconds,
                    r.mib_per_s,
                    output.display()
                );
            }
            Ok(())
        }
        Command::Stat {
            name,
            version,
            json,
        } => {
            let mut c = Client::new(cfg).await?;
            let versions = objects::lookup(&mut c, &name, 0).await?;
            anyhow::ensure!(!versions.is_empty(), "object {name:?} not found");
            let m = objects::manifest(&mut c, &name, version).await?;
            if json {
                let v: Vec<_> = versions
                    .iter()
                    .map(|(v, f)| serde_json::json!({"version": v, "manifest": hex::encode(f.manifest_id), "holders": f.holders}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "name": m.name, "version": m.version, "size": m.size,
                        "chunk_size": m.chunk_size, "object_hash": hex::encode(m.object_hash),
                        "chunks": m.chunks.iter().map(hex::encode).collect::<Vec<_>>(),
                        "versions": v,
                    })
                );
            } else {
                println!(
                    "{}: versions {:?}",
                    name,
                    versions.keys().collect::<Vec<_>>()
                );
                for (v, f) in &versions {
                    println!(
                        "  version {v}: manifest {} on nodes {:?}",
                        hex::encode(f.manifest_id),
                        f.holders
                    );
                }
                println!(
                    "version {}: {} bytes, {} chunks of {} bytes, BLAKE3 {}",
                    m.version,
                    m.size,
                    m.chunks.len(),
                    m.chunk_size,
                    hex::encode(m.object_hash)
                );
            }
            Ok(())
        }
    }
}
