//! GlusterFS as a peer to compare subcast with: a replica-N volume built inside a
//! lab's namespaces, its FUSE and libgfapi clients, and a bench that measures it the
//! way `put-bench` measures subcast.
//!
//! ```no_run
//! use labs::gluster::{ClientMode, GlusterOptions, GlusterVolume};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let topo = labs::Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml"))?;
//! # let lab = labs::Lab::build(&topo, labs::LabOptions::default())?;
//! let servers = labs::gluster::default_servers(&lab, "X2", 3);   // X1, X3, X4
//! let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
//! let mut vol = GlusterVolume::build(&lab, &servers, "X2", GlusterOptions::default())?;
//! let r = vol.bench(ClientMode::Fuse, 256 * 1024, 20)?;           // PeerBenchResult
//! println!("{}", serde_json::to_string(&r)?);  // ok, put_ms.{p50,p90,p99,max}, throughput_mib_s, ...
//! drop(vol);                                    // before the lab (it borrows it)
//! # Ok(()) }
//! ```
//!
//! How it is built (the recipe of `lab-notes.md`):
//! * **Servers**: on each server host, `unshare --mount --propagation private` in
//!   the host's network namespace, per-server directories (under the lab's scratch
//!   directory, `gluster/<HOST>/{lib,log,run,brick}`) bind-mounted over
//!   `/var/lib/glusterd`, `/var/log/glusterfs` and `/run`, a lab hosts file (host
//!   `X3` is `x3`, its `fd00:5c::` address) over `/etc/hosts`, then `glusterd -N`
//!   with an IPv6 `glusterd.vol` (the lab is IPv6-only). The CLI runs inside the
//!   first server with `nsenter -t <glusterd> -m -n gluster --mode=script`:
//!   `peer probe` each other server, `volume create V replica N transport tcp
//!   x1:/.../brick ... force`, `volume start V`, then wait until every brick is
//!   online.
//! * **Client**: a private mount namespace in the client host's network namespace
//!   (held by a `sleep` process; the hosts file bound there too). FUSE: `glusterfs -N
//!   --xlator-option=transport.address-family=inet6` mounts the volume inside it.
//!   libgfapi: the bench client loads `libgfapi.so.0` (ctypes) and fetches the
//!   volfile from the first server's address.
//! * **Bench**: `labs/gluster/client.py` (embedded, written into the peer's
//!   directory) runs in the client's namespaces, times each object's create +
//!   write + fsync + close, and reads all back afterwards. The lab reads the
//!   client's `eth0` counters (TSO/GSO off) and every other non-server host's, from
//!   outside, around the write phase only.
//! * **Teardown** (drop, before the lab): lazy unmount, SIGKILL by PID of every
//!   process in the peer's mount namespaces (glusterd's brick and self-heal daemons
//!   daemonize, so they are found by namespace, never by name), then the directory
//!   is deleted. [`GlusterVolume::footprint`] + [`Footprint::leftovers`] check it.
//!
//! Needs root and the Debian packages `glusterfs-server glusterfs-client` (plus
//! `python3`, `util-linux`, `ethtool`, `/dev/fuse`): [`check_installed`] says what
//! is missing, [`available`] is the test guard honouring `SUBCAST_LABS_REQUIRED`.

mod bench;
mod client;
mod error;
mod install;
mod procs;
mod server;
mod suite;
mod volume;
pub mod wire;

pub use bench::{ClientMode, PeerBenchResult, PutMs};
pub use error::{GlusterError, INSTALL_HINT, Result};
pub use install::{available, check_installed, missing};
pub use server::GLUSTERD_PORT;
pub use suite::{BenchCase, BenchPlan, run_plan, table};
pub use volume::{Footprint, GlusterOptions, GlusterVolume, default_servers};
