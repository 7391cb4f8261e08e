//! The command lines of snapshots, clones, deletes, `ls` and `gc`.

use super::{mark, ops};
use crate::client::Client;
use crate::config::Config;
use crate::objects::PutOptions;
use crate::transport::Mode;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SnapCommand {
    /// List the objects of a bucket (optionally under a prefix) with their
    /// versions, sizes and the snapshots that pin each version.
    Ls {
        /// BUCKET or BUCKET/PREFIX.
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an object: write a tombstone version (older versions stay
    /// readable with --version until gc; snapshots keep theirs).
    Delete {
        name: String,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
        #[arg(long)]
        json: bool,
    },
    /// Snapshots of a bucket.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Clone BUCKET/OBJECT@SNAPSHOT to NEW/NAME, or BUCKET@SNAPSHOT to
    /// NEWBUCKET: new names that share the snapshot's chunks (no copy).
    Clone {
        source: String,
        dest: String,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
        #[arg(long)]
        json: bool,
    },
    /// Remove the chunks nothing references from the stores of the nodes
    /// running on this host (each a `node.store` of a running `serve`).
    Gc {
        /// A node's store directory (repeat for several nodes).
        #[arg(long = "store", required = true)]
        stores: Vec<PathBuf>,
        /// Chunks stored or claimed by a put less than this long before
        /// the mark are kept. At least twice the config's `put_max_s` (a
        /// put slower than that abandons itself before its manifest).
        #[arg(long, default_value_t = 3600.0)]
        grace_s: f64,
        /// No put is under way anywhere (a maintenance window, a test):
        /// accept a --grace-s shorter than twice `put_max_s`.
        #[arg(long)]
        no_puts_running: bool,
        /// Run a pass every N seconds (the background task) instead of once.
        #[arg(long)]
        every_s: Option<f64>,
        /// Mark only: print what is referenced, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot every object of BUCKET as of now, as NAME.
    Create {
        bucket: String,
        name: String,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
        #[arg(long)]
        json: bool,
    },
    /// The snapshots of a bucket.
    List {
        bucket: String,
        #[arg(long)]
        json: bool,
    },
    /// The objects and versions a snapshot holds.
    Show {
        bucket: String,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot (a tombstone of its record): it pins nothing more.
    Delete {
        bucket: String,
        name: String,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
    },
}

fn opts(cfg: &Config, t: Option<Mode>) -> PutOptions {
    PutOptions {
        mode: t.unwrap_or(cfg.transport),
        replicas: cfg.replicas,
        chunk_size: cfg.chunk_size,
        inline_max: cfg.inline_max,
        quiet: true,
    }
}

fn print(
    json: bool,
    v: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(v)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

/// Runs one of these commands.
pub async fn run(cfg: Config, cmd: SnapCommand) -> anyhow::Result<()> {
    let mut c = Client::new(cfg.clone()).await?;
    let r = run_with(&mut c, &cfg, cmd).await;
    c.close().await;
    r
}

async fn run_with(c: &mut Client, cfg: &Config, cmd: SnapCommand) -> anyhow::Result<()> {
    match cmd {
        SnapCommand::Ls { path, json } => {
            let objs = ops::ls(c, &path).await?;
            print(json, &objs, || {
                let mut s = String::new();
                for o in &objs {
                    for v in &o.versions {
                        s += &format!(
                            "{}\tv{}\t{}\t{}\twriter {}{}\n",
                            o.name,
                            v.version,
                            if v.deleted {
                                "deleted".into()
                            } else {
                                v.size.to_string()
                            },
                            &v.manifest[..16],
                            v.writer,
                            if v.snapshots.is_empty() {
                                String::new()
                            } else {
                                format!("\tpinned by {}", v.snapshots.join(","))
                            }
                        );
                    }
                }
                s
            })
        }
        SnapCommand::Delete {
            name,
            transport,
            json,
        } => {
            let v = ops::delete(c, &name, &opts(cfg, transport)).await?;
            print(
                json,
                &serde_json::json!({"name": name, "tombstone_version": v}),
                || format!("{name}: deleted (tombstone version {v})\n"),
            )
        }
        SnapCommand::Clone {
            source,
            dest,
            transport,
            json,
        } => {
            let r = ops::clone(c, &source, &dest, &opts(cfg, transport)).await?;
            print(json, &r, || {
                r.objects
                    .iter()
                    .map(|(n, v, s)| {
                        format!("{n} version {v}: clone of {s} in {}\n", r.from_snapshot)
                    })
                    .collect()
            })
        }
        SnapCommand::Snapshot { command } => snapshot(c, cfg, command).await,
        SnapCommand::Gc {
            stores,
            grace_s,
            no_puts_running,
            every_s,
            dry_run,
            json,
        } => {
            anyhow::ensure!(grace_s >= 0.0, "--grace-s must not be negative");
            anyhow::ensure!(
                no_puts_running || grace_s >= 2.0 * cfg.put_max_s,
                "--grace-s {grace_s} is shorter than twice the config's put_max_s ({} s): \
                 gc could collect the chunks of a put still under way; give --grace-s {} \
                 or more, lower put_max_s in the config the clients use, or say \
                 --no-puts-running when no put is under way",
                cfg.put_max_s,
                2.0 * cfg.put_max_s
            );
            let grace = Duration::from_secs_f64(grace_s);
            loop {
                let r = mark::gc_pass(c, &stores, grace, dry_run).await?;
                print(json, &r, || {
                    let mut s = format!(
                        "gc mark: {} manifests listed, {} live, {} snapshots, {} chunks referenced\n",
                        r.mark.manifests_listed,
                        r.mark.live_manifests,
                        r.mark.snapshots,
                        r.mark.referenced_chunks
                    );
                    for w in &r.sweeps {
                        s += &format!(
                            "node {}: removed {} chunks ({} bytes), holds {}\n",
                            w.node, w.removed_chunks, w.removed_bytes, w.held_chunks
                        );
                    }
                    s
                })?;
                let Some(e) = every_s else { return Ok(()) };
                tokio::time::sleep(Duration::from_secs_f64(e.max(0.1))).await;
            }
        }
    }
}

async fn snapshot(c: &mut Client, cfg: &Config, cmd: SnapshotCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create {
            bucket,
            name,
            transport,
            json,
        } => {
            let r = ops::snapshot_create(c, &bucket, &name, &opts(cfg, transport)).await?;
            print(json, &r, || {
                format!(
                    "snapshot {}@{}: {} objects as of {} us, record {} bytes, {:.3} s\n",
                    r.bucket, r.name, r.objects, r.cut_us, r.record_bytes, r.seconds
                )
            })
        }
        SnapshotCommand::List { bucket, json } => {
            let l = ops::snapshot_list(c, &bucket).await?;
            let rows: Vec<_> = l
                .iter()
                .map(|r| serde_json::json!({"name": r.name, "cut_us": r.cut_us, "objects": r.entries.len()}))
                .collect();
            print(json, &rows, || {
                l.iter()
                    .map(|r| {
                        format!(
                            "{}\tcut {} us\t{} objects\n",
                            r.name,
                            r.cut_us,
                            r.entries.len()
                        )
                    })
                    .collect()
            })
        }
        SnapshotCommand::Show { bucket, name, json } => {
            let r = ops::snapshot_show(c, &bucket, &name).await?;
            print(json, &r, || {
                let mut s = format!(
                    "snapshot {}@{} cut {} us: {} objects\n",
                    r.bucket,
                    r.name,
                    r.cut_us,
                    r.entries.len()
                );
                for e in &r.entries {
                    s += &format!(
                        "{}\tv{}\t{} bytes\twriter {}\n",
                        e.name, e.version, e.size, e.writer
                    );
                }
                s
            })
        }
        SnapshotCommand::Delete {
            bucket,
            name,
            transport,
        } => {
            let rname = super::record::record_name(&bucket, &name);
            let v = ops::delete(c, &rname, &opts(cfg, transport)).await?;
            println!("snapshot {bucket}@{name}: deleted (tombstone version {v} of {rname})");
            Ok(())
        }
    }
}
