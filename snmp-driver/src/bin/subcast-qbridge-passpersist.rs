//! net-snmp pass_persist handler serving Q-BRIDGE-MIB from a Linux bridge (a test switch).
//!
//! snmpd.conf: `pass_persist .1.3.6.1.2.1.17 /path/subcast-qbridge-passpersist --bridge br0
//! --ipv6-group-prefix ff3e::/96 [--netns NS]`. Logs go to stderr (or `--log-file`).

use anyhow::Context;
use clap::Parser;
use subcast_snmp::passpersist::{self, Agent, Bridge, GroupPrefix, Ipv4Prefix, netns};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The Linux bridge to serve.
    #[arg(long)]
    bridge: String,
    /// Network namespace holding the bridge (a name from `ip netns list`); the handler
    /// enters it at start. Default: the current one.
    #[arg(long)]
    netns: Option<String>,
    /// IPv6 /96 that rows map to: MAC 33:33:aa:bb:cc:dd <-> group PREFIX::aabb:ccdd.
    #[arg(long, default_value = "ff3e::/96")]
    ipv6_group_prefix: GroupPrefix,
    /// IPv4 multicast prefix (length 9 to 32) that rows of 01:00:5e MACs map to: MAC
    /// 01:00:5e:xx:yy:zz <-> the group of the prefix whose low 23 bits are xx:yy:zz.
    /// Without it only IPv6 rows are served.
    #[arg(long)]
    ipv4_group_prefix: Option<Ipv4Prefix>,
    /// Append logs to this file instead of stderr.
    #[arg(long)]
    log_file: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUBCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match &args.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    let r = serve(args);
    if let Err(e) = &r {
        // snmpd does not show the handler's stderr: say it in the log too.
        tracing::error!("{e:#}");
    }
    r
}

fn serve(args: Args) -> anyhow::Result<()> {
    if let Some(ns) = &args.netns {
        netns::enter(ns)?;
    }
    let mut bridge = Bridge::open(args.bridge)?;
    bridge
        .ports()
        .with_context(|| format!("cannot read the ports of bridge {}", bridge.name()))?;
    tracing::info!(bridge = bridge.name(), "serving Q-BRIDGE-MIB");
    let prefix = match args.ipv4_group_prefix {
        Some(v4) => args.ipv6_group_prefix.with_ipv4(v4),
        None => args.ipv6_group_prefix,
    };
    let mut agent = Agent::new(bridge, prefix);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    passpersist::serve(&mut agent, &mut stdin.lock(), &mut stdout.lock())
        .context("pass_persist pipe to snmpd failed")
}
