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
        #[arg(long, short)]
        quiet: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show an object's versions and newest manifest.
    Stat {
        name: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}
