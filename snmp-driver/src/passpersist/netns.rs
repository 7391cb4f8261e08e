//! Entering a named network namespace (`ip netns add NAME`, bound at `/run/netns/NAME`).

use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::path::PathBuf;

/// Entering a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `/run/netns/NAME` cannot be opened.
    #[error("cannot open network namespace {path}: {source} (does `ip netns list` show it?)")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// setns(2) failed.
    #[error(
        "cannot enter network namespace {path}: {source} (this needs CAP_SYS_ADMIN, i.e. root)"
    )]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        source: nix::Error,
    },
}

/// Moves the calling thread into network namespace `name`. Sockets opened afterwards by
/// this thread (and threads it starts) live there; call it before starting other threads.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let path = PathBuf::from("/run/netns").join(name);
    let f = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    setns(f, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { path, source })
}
