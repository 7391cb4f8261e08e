//! The lab's error type.

use crate::topology::TopologyError;

/// Anything that can go wrong while building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// An external command (`ip`, `bridge`, `nft`, `tcpdump`...) failed.
    #[error("command `{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status as text.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An external command could not be started.
    #[error(
        "cannot run `{cmd}`: {source} (is iproute2/tcpdump/nftables installed and are we root?)"
    )]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A host or switch name not in the topology.
    #[error("no {kind} named `{name}` in this lab")]
    Unknown {
        /// "host" or "switch".
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A feature the lab does not build yet.
    #[error("not supported by the lab builder: {0}")]
    Unsupported(String),
    /// Local I/O (sockets, files, entering a namespace).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// Output of a tool or a capture file that could not be understood.
    #[error("cannot parse {0}")]
    Parse(String),
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    /// A send that failed because the interface is not ready for IPv6 yet
    /// (no carrier seen so far: the kernel has not added its multicast route,
    /// ENETUNREACH; or it is still down, ENETDOWN). Worth retrying while a
    /// lab settles.
    pub(crate) fn is_link_not_ready(&self) -> bool {
        use std::io::ErrorKind::{NetworkDown, NetworkUnreachable};
        matches!(self, LabError::Io { source, .. }
            if matches!(source.kind(), NetworkUnreachable | NetworkDown))
    }
}

/// Result with [`LabError`].
pub type Result<T, E = LabError> = std::result::Result<T, E>;
