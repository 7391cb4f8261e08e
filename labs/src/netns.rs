//! Entering a network namespace from inside this process, one thread at a time.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling thread only, so
//! [`in_netns`] runs a closure on a fresh thread that first enters the namespace.
//! Sockets created there belong to that namespace for their whole life and can be
//! used from any thread afterwards.
//!
//! With tokio (e.g. an rtnetlink connection or a tokio `UdpSocket` inside a switch
//! namespace), enter the runtime inside the closure so the socket registers with it:
//!
//! ```ignore
//! let rt = tokio::runtime::Handle::current();
//! let (conn, handle, _) = labs::netns::in_netns(&sw.netns, move || {
//!     let _g = rt.enter();
//!     rtnetlink::new_connection()
//! })??;
//! tokio::spawn(conn);
//! ```
//! or create a std socket in the closure and convert it with `from_std` afterwards.

use std::fs::File;

use nix::sched::{CloneFlags, setns};

use crate::error::{LabError, Result};

/// Directory where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Run `f` on a new thread that has entered network namespace `netns` (a name made by
/// `ip netns add`). Returns what `f` returns.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = format!("{NETNS_DIR}/{netns}");
    let file = File::open(&path).map_err(|e| {
        LabError::io(
            format!("opening namespace {path} (does the lab still exist?)"),
            e,
        )
    })?;
    let handle = std::thread::Builder::new()
        .name(format!("netns-{netns}"))
        .spawn(move || -> Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                LabError::io(
                    format!("entering namespace {path}"),
                    std::io::Error::from(e),
                )
            })?;
            Ok(f())
        })
        .map_err(|e| LabError::io("spawning a thread", e))?;
    handle.join().map_err(|_| LabError::Io {
        context: format!("thread in namespace {netns}"),
        source: std::io::Error::other("panicked"),
    })?
}

/// Names of all namespaces under [`NETNS_DIR`].
pub fn list() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Interface index of `ifname` inside the current thread's namespace.
pub fn if_index(ifname: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(ifname).map_err(|e| {
        LabError::io(
            format!("looking up interface {ifname}"),
            std::io::Error::from(e),
        )
    })
}
