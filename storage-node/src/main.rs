use anyhow::Context;
use clap::Parser;
use subcast_node::cli::{Cli, Command, KeysCommand};
use subcast_node::client::Client;
use subcast_node::config::Config;
use subcast_node::objects::{self, PutOptions};

// One thread: the loops of `serve` and of the client wait on their own
// sockets (a worker thread polling for them would have to wake this one,
// a context switch on every datagram); the disk has its own threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    if let Command::Keys { command } = cli.command {
        return keys_command(command);
    }
    if let Command::DefaultConfig = cli.command {
        print!("{}", subcast_node::config::DEFAULT_CONFIG);
        return Ok(());
    }
    if let Command::Sites { status, json } = cli.command {
        let v = subcast_node::sites::status::fetch(status).await?;
        match json {
            true => println!("{v}"),
            false => print!("{}", subcast_node::sites::status::render(&v)),
        }
        return Ok(());
    }
    let cfg = Config::load(&cli.config)?;
    match cli.command {
        Command::Keys { .. } | Command::DefaultConfig | Command::Sites { .. } => {
            unreachable!("handled above")
        }
        Command::Gateway { sites } => {
            let gw = subcast_node::sites::GatewayConfig::load(&sites)?;
            subcast_node::sites::gateway::run(cfg, gw).await
        }
        Command::Serve => subcast_node::daemon::serve(cfg).await,
        Command::CheckConfig => {
            let id = cfg.identity()?;
            if let Some(c) = &cfg.controller {
                c.key.load(&cfg.base_dir)?;
            }
            subcast_node::transport::ifindex(cfg.interface.as_deref())?;
            subcast_node::transport::check_mtu(cfg.interface.as_deref(), cfg.mtu)?;
            let mode = if id.keys.is_shared() {
                "INSECURE single-key mode (any key holder can claim any node id)".to_owned()
            } else {
                format!(
                    "pair keys with {} peers, {} known addresses",
                    id.keys.peers().len(),
                    id.addresses.len()
                )
            };
            println!(
                "{}: ok ({} negotiating groups, R={}, transport {}, {mode}{})",
                cli.config.display(),
                cfg.negotiating_groups.len(),
                cfg.replicas,
                cfg.transport.name(),
                cfg.node
                    .as_ref()
                    .map(|n| format!(
                        ", node {} storing in {}",
                        id.keys.own_id(),
                        n.store.display()
                    ))
                    .unwrap_or_else(|| format!(", client id {}", id.keys.own_id()))
            );
            Ok(())
        }
        Command::Put {
            file,
            name,
            transport,
            replicas,
            chunk_size,
            inline_max,
            quiet,
            json,
        } => {
            let o = PutOptions {
                mode: transport.unwrap_or(cfg.transport),
                replicas: replicas.unwrap_or(cfg.replicas),
                chunk_size: chunk_size.unwrap_or(cfg.chunk_size),
                inline_max: inline_max.unwrap_or(cfg.inline_max),
                quiet,
            };
            anyhow::ensure!(o.replicas >= 1, "--replicas must be at least 1");
            anyhow::ensure!(
                (1..=16 << 20).contains(&o.chunk_size),
                "--chunk-size must be 1 byte to 16 MiB"
            );
            let cfg_fallback = cfg.fallback_transport.name();
            let mut c = Client::new(cfg).await?;
            let r = objects::put_object(&mut c, &file, &name, &o).await;
            c.close().await;
            let r = r.with_context(|| format!("put of {} as {name:?} failed", file.display()))?;
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
                if r.fallbacks > 0 {
                    println!(
                        "fallback: {} chunks by {} ({})",
                        r.fallbacks,
                        cfg_fallback,
                        r.fallback_reasons.join("; ")
                    );
                }
            }
            Ok(())
        }
        Command::Get {
            name,
            output,
            version,
            snapshot,
            quiet,
            json,
        } => {
            let mut c = Client::new(cfg).await?;
            let r = subcast_node::snapshot::get(
                &mut c,
                &name,
                version,
                snapshot.as_deref(),
                &output,
                quiet,
            )
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
        Command::Bench {
            object_size,
            puts,
            transport,
            replicas,
            chunk_size,
            inline_max,
            name_prefix,
            verify: _,
            no_verify,
            json,
        } => {
            let o = subcast_node::bench::BenchOptions {
                object_size,
                puts,
                put: PutOptions {
                    mode: transport.unwrap_or(cfg.transport),
                    replicas: replicas.unwrap_or(cfg.replicas),
                    chunk_size: chunk_size.unwrap_or(cfg.chunk_size),
                    inline_max: inline_max.unwrap_or(cfg.inline_max),
                    quiet: true,
                },
                name_prefix,
                verify: !no_verify,
            };
            let mut c = Client::new(cfg).await?;
            let r = subcast_node::bench::run(&mut c, &o).await?;
            c.close().await;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} puts of {} bytes, {}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.1} MiB/s, {:.3} wire bytes per byte, {} verified, {} fallbacks",
                    r.puts,
                    r.object_size,
                    r.transport,
                    r.put_ms.p50,
                    r.put_ms.p90,
                    r.put_ms.p99,
                    r.put_ms.max,
                    r.throughput_mib_s,
                    r.wire_bytes_per_payload_byte,
                    r.verified,
                    r.fallbacks
                );
                if let Some(g) = &r.get_ms {
                    println!(
                        "gets (read back, fsynced locally): p50 {:.2} ms, p99 {:.2} ms; {} of {} objects inside their manifest",
                        g.p50, g.p99, r.inline_puts, r.puts
                    );
                }
                for e in &r.errors {
                    eprintln!("error: {e}");
                }
            }
            anyhow::ensure!(r.ok, "bench failed: {} errors", r.errors.len());
            Ok(())
        }
        Command::Snap(c) => subcast_node::snapshot::cli::run(cfg, c).await,
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
                    .map(|(k, f)| serde_json::json!({"version": k.version, "writer": k.writer, "manifest": hex::encode(k.manifest_id), "holders": f.holders}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "name": m.name, "version": m.version, "writer": m.writer, "size": m.size,
                        "chunk_size": m.chunk_size, "object_hash": hex::encode(m.object_hash),
                        "chunks": m.chunks.iter().map(hex::encode).collect::<Vec<_>>(),
                        "inline": m.is_inline(),
                        "versions": v,
                    })
                );
            } else {
                println!(
                    "{}: versions {:?}",
                    name,
                    versions.keys().map(|k| k.version).collect::<Vec<_>>()
                );
                for (k, f) in &versions {
                    println!(
                        "  version {} by writer {}: manifest {} on nodes {:?}",
                        k.version,
                        k.writer,
                        hex::encode(k.manifest_id),
                        f.holders
                    );
                }
                if m.is_inline() {
                    println!(
                        "version {} by writer {}: {} bytes inside its manifest, BLAKE3 {}",
                        m.version,
                        m.writer,
                        m.size,
                        hex::encode(m.object_hash)
                    );
                } else {
                    println!(
                        "version {} by writer {}: {} bytes, {} chunks of {} bytes, BLAKE3 {}",
                        m.version,
                        m.writer,
                        m.size,
                        m.chunks.len(),
                        m.chunk_size,
                        hex::encode(m.object_hash)
                    );
                }
            }
            Ok(())
        }
    }
}

fn keys_command(c: KeysCommand) -> anyhow::Result<()> {
    use subcast_node::keys::{KeyFile, parse_peers, read_secret, write_private};
    match c {
        KeysCommand::Secret { out } => {
            anyhow::ensure!(
                !out.exists(),
                "{} exists: a new secret would orphan every key file derived from it",
                out.display()
            );
            let s: [u8; 32] = rand::random();
            write_private(&out, &(hex::encode(s) + "\n"))?;
            println!("wrote a new cluster secret to {}", out.display());
            Ok(())
        }
        KeysCommand::Derive {
            secret,
            node,
            peers,
            key_id,
            out,
        } => {
            let s = read_secret(&secret)?;
            let peers = parse_peers(&peers)?;
            let f = KeyFile::derive(&s, key_id, node, &peers)?;
            let text = f.to_yaml();
            match out {
                Some(p) => {
                    write_private(&p, &text)?;
                    eprintln!(
                        "wrote the key file of node {node} ({} peers) to {}",
                        f.peers.len(),
                        p.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}
