//! What can go wrong with the GlusterFS peer.

use crate::error::LabError;

/// The Debian packages that provide GlusterFS here.
pub const INSTALL_HINT: &str = "apt-get install glusterfs-server glusterfs-client";

/// Errors of [`crate::gluster`].
#[derive(Debug, thiserror::Error)]
pub enum GlusterError {
    /// GlusterFS (or a tool the peer needs) is not installed.
    #[error("GlusterFS peer cannot run: missing {missing}; install with `{install}`")]
    Missing {
        /// What is missing (binaries, libraries, devices), comma-separated.
        missing: String,
        /// The command that installs it.
        install: String,
    },
    /// The lab underneath failed (a command, a namespace, a host name).
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A GlusterFS daemon or command did not do what was asked.
    #[error("GlusterFS {what}: {detail}")]
    Gluster {
        /// What was being done (`peer probe x3`, `volume start`...).
        what: String,
        /// What went wrong, with the last lines of the relevant log.
        detail: String,
    },
    /// The bench client failed or said something unexpected.
    #[error("GlusterFS bench client: {0}")]
    Client(String),
    /// The arguments do not make sense (no servers, client among the servers...).
    #[error("GlusterFS peer: {0}")]
    Invalid(String),
    /// Something did not happen in time.
    #[error("GlusterFS peer timed out: {0}")]
    Timeout(String),
}

impl GlusterError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        GlusterError::Lab(LabError::Io {
            context: context.into(),
            source,
        })
    }

    pub(crate) fn gluster(what: impl Into<String>, detail: impl Into<String>) -> Self {
        GlusterError::Gluster {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Result with [`GlusterError`].
pub type Result<T, E = GlusterError> = std::result::Result<T, E>;
