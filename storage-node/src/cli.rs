//! Command line of `subcast-node`.

use crate::transport::Mode;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "subcast-node",
    version,
    about = "Replicast storage node and client"
)]
pub struct Cli {
    /// Configuration file (YAML; see storage-node/examples/node.yaml).
    #[arg(
        long,
        short,
        global = true,
        env = "SUBCAST_NODE_CONFIG",
        default_value = "node.yaml"
    )]
    pub config: PathBuf,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, global = true, env = "SUBCAST_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the storage server.
    Serve,
    /// Check the configuration file and exit.
    CheckConfig,
    /// Print a commented default configuration (a starting point).
    DefaultConfig,
    /// Store FILE as a new version of an object.
    Put {
        file: PathBuf,
        /// Object name, e.g. bucket/object.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
        /// Copies of every chunk (default: config `replicas`).
        #[arg(long)]
        replicas: Option<usize>,
        /// Chunk size in bytes (default: config `chunk_size`).
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Objects of 1 byte to this many (and one chunk) go inside
        /// their manifest; 0: never (default: config `inline_max`).
        #[arg(long)]
        inline_max: Option<usize>,
        #[arg(long, short)]
        quiet: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch an object into a file.
    Get {
        name: String,
        #[arg(long, short)]
        output: PathBuf,
        /// A version other than the newest.
        #[arg(long)]
        version: Option<u64>,
        /// The version a snapshot of the object's bucket holds.
        #[arg(long)]
        snapshot: Option<String>,
        #[arg(long, short)]
        quiet: bool,
        #[arg(long)]
        json: bool,
    },
    /// Time N durable puts of random objects from this one process, then
    /// read each back and compare (not timed).
    Bench {
        /// Bytes per object.
        #[arg(long, default_value_t = 262_144)]
        object_size: usize,
        /// Number of puts.
        #[arg(long, default_value_t = 200)]
        puts: usize,
        #[arg(long, value_enum)]
        transport: Option<Mode>,
        /// Copies of every chunk (default: config `replicas`).
        #[arg(long)]
        replicas: Option<usize>,
        /// Chunk size in bytes (default: config `chunk_size`).
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Objects of 1 byte to this many (and one chunk) go inside
        /// their manifest; 0: never (default: config `inline_max`).
        #[arg(long)]
        inline_max: Option<usize>,
        /// Object names are PREFIX<run id>-<n>.
        #[arg(long, default_value = "bench/")]
        name_prefix: String,
        /// Read every object back and compare (the default).
        #[arg(long, overrides_with = "no_verify")]
        verify: bool,
        /// Skip the read-back.
        #[arg(long)]
        no_verify: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Provisioning: cluster secrets and per-node key files (no config
    /// needed).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run a site gateway (multi-site replication; README "Sites").
    Gateway {
        /// The gateway's file (site, links, secrets; examples/gateway.yaml).
        #[arg(long)]
        sites: PathBuf,
    },
    /// Show a site gateway's links (sent, received, refused, backlog).
    Sites {
        /// The gateway's `status` address, e.g. `[::1]:7402`.
        #[arg(long)]
        status: std::net::SocketAddr,
        #[arg(long)]
        json: bool,
    },
    // Snapshots, clones, deletes, listings, gc (issue 16).
    #[command(flatten)]
    Snap(crate::snapshot::cli::SnapCommand),
    /// Show an object's versions and newest manifest.
    Stat {
        name: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new random cluster secret (64 hex digits, mode 0600). Keep it
    /// with provisioning only: nodes get key files, never the secret.
    Secret {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write node N's key file: its pair keys with each peer, derived from
    /// the cluster secret (which the file does not contain).
    Derive {
        /// The cluster secret file.
        #[arg(long)]
        secret: PathBuf,
        /// The node (or client) the key file is for.
        #[arg(long)]
        node: u32,
        /// Peers: ids, ranges and id=address, e.g. `1-5,100=fd00:5c::64`
        /// (IPv4: `100=10.92.0.100`).
        /// A peer with an address is accepted only from it.
        #[arg(long)]
        peers: String,
        /// Generation of the secret (the header's Key ID).
        #[arg(long, default_value_t = 1)]
        key_id: u32,
        /// Where to write it (mode 0600); default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
