//! A GlusterFS replicated volume on a lab: servers, client, bench runs, teardown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::lab::Lab;

use super::bench::{ClientMode, PeerBenchResult, WireBytes};
use super::client::ClientNs;
use super::error::{GlusterError, Result};
use super::server::{self, Server, ServerFiles};
use super::{install, procs, wire};

/// Options for [`GlusterVolume::build`].
#[derive(Debug, Clone)]
pub struct GlusterOptions {
    /// Volume name. Default `subcast`.
    pub volume: String,
    /// Mount the FUSE client at build time (otherwise on the first FUSE bench).
    /// Default true.
    pub mount_fuse: bool,
    /// Turn TSO/GSO off on the client's `eth0` so its counters are wire-accurate.
    /// Default true.
    pub wire_accurate: bool,
    /// How long building may take (daemons up, peers connected, bricks online).
    /// Default 60 s.
    pub build_timeout: Duration,
    /// How long one bench phase (all writes, or all reads) may take. Default 600 s.
    pub phase_timeout: Duration,
    /// Bytes per write call of the bench client. Default 1 MiB.
    pub write_chunk: usize,
}

impl Default for GlusterOptions {
    fn default() -> Self {
        GlusterOptions {
            volume: "subcast".into(),
            mount_fuse: true,
            wire_accurate: true,
            build_timeout: Duration::from_secs(60),
            phase_timeout: Duration::from_secs(600),
            write_chunk: 1 << 20,
        }
    }
}

/// What a volume leaves on the machine while it runs; after it is dropped,
/// [`Footprint::leftovers`] must be empty.
#[derive(Debug, Clone)]
pub struct Footprint {
    /// Private mount namespaces of the servers and the client.
    pub mount_namespaces: Vec<String>,
    /// The peer's directory (bricks, state, logs, mount point).
    pub dir: PathBuf,
    /// Open handles of those namespaces: while this footprint lives, their
    /// identifiers cannot be reused by namespaces of other programs, so a process
    /// found in one of them is the peer's. Empty is fine when there are none.
    pub held: Vec<std::sync::Arc<std::fs::File>>,
}

impl Footprint {
    /// What is still there: processes in the peer's mount namespaces, processes whose
    /// command line names its directory, mounts under it, the directory itself.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ns in &self.mount_namespaces {
            for pid in procs::pids_in_mount_ns(ns) {
                out.push(format!(
                    "process {pid} ({}) in mount namespace {ns}",
                    procs::comm_of(pid).unwrap_or_default()
                ));
            }
        }
        let dir = self.dir.to_string_lossy().into_owned();
        let me = std::process::id();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for pid in rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != me)
            {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if !cmdline.is_empty() && String::from_utf8_lossy(&cmdline).contains(&dir) {
                    out.push(format!(
                        "process {pid} ({}) names {dir}",
                        procs::comm_of(pid).unwrap_or_default()
                    ));
                }
            }
        }
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in m.lines().filter(|l| l.contains(&dir)) {
                out.push(format!("mount: {l}"));
            }
        }
        if self.dir.exists() {
            out.push(format!("directory {dir} still exists"));
        }
        out
    }
}

/// A GlusterFS volume replicated over `servers` (one brick each, replica N), with
/// its client on another host of the same lab. Dropping it ends every process of the
/// volume by PID (those in its private mount namespaces), unmounts and deletes its
/// directory. It borrows the lab, so it always goes before the lab does.
#[derive(Debug)]
pub struct GlusterVolume<'lab> {
    lab: &'lab Lab,
    opts: GlusterOptions,
    dir: PathBuf,
    servers: Vec<Server>,
    client: Option<ClientNs>,
    runs: AtomicU32,
}

/// The hosts a peer would use on `lab`: the first `n` members of the first
/// negotiating group (the hosts that run storage nodes) other than `client`, or the
/// first `n` other hosts when the topology has no negotiating group.
pub fn default_servers(lab: &Lab, client: &str, n: usize) -> Vec<String> {
    let topo = lab.topology();
    let pool: Vec<String> = match topo.negotiating_groups.values().next() {
        Some(g) => g.members.clone(),
        None => topo
            .hosts_in_order()
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    pool.into_iter().filter(|h| h != client).take(n).collect()
}

impl<'lab> GlusterVolume<'lab> {
    /// Start glusterd on every server host, make them one trusted pool, create and
    /// start a volume with one brick per server (`replica N` for N > 1), and set up
    /// the client on `client` (FUSE mounted unless `opts.mount_fuse` is false).
    /// Fails with [`GlusterError::Missing`] (naming the `apt-get install` line) when
    /// GlusterFS is not installed.
    pub fn build(
        lab: &'lab Lab,
        servers: &[&str],
        client: &str,
        opts: GlusterOptions,
    ) -> Result<GlusterVolume<'lab>> {
        install::check_installed()?;
        if servers.is_empty() {
            return Err(GlusterError::Invalid("no servers given".into()));
        }
        if servers.contains(&client) {
            return Err(GlusterError::Invalid(format!(
                "the client {client} is also a server"
            )));
        }
        for (i, s) in servers.iter().enumerate() {
            lab.try_host(s)?;
            if servers[..i].contains(s) {
                return Err(GlusterError::Invalid(format!("server {s} given twice")));
            }
        }
        lab.try_host(client)?;
        let started = Instant::now();
        let deadline = started + opts.build_timeout;
        let dir = lab.workdir().join("gluster");
        std::fs::create_dir_all(&dir)
            .map_err(|e| GlusterError::io(format!("creating {}", dir.display()), e))?;
        // Each server's directory (brick, state) spread as the storage
        // nodes' stores are (see `scratch`).
        crate::scratch::spread_subdirs(&dir);
        let mut vol = GlusterVolume {
            lab,
            opts,
            dir,
            servers: Vec::new(),
            client: None,
            runs: AtomicU32::new(0),
        };
        // From here on, a failure drops `vol`, which ends whatever was started.
        let files = ServerFiles {
            hosts: vol.dir.join("hosts"),
            volfile: vol.dir.join("glusterd.vol"),
            gsyncd_stub: vol.dir.join("gsyncd-stub"),
            gsyncd: server::gsyncd_path(),
        };
        write(&files.hosts, &server::hosts_file(lab))?;
        write(&files.volfile, server::GLUSTERD_VOL)?;
        write(&files.gsyncd_stub, server::GSYNCD_STUB)?;
        std::fs::set_permissions(&files.gsyncd_stub, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| GlusterError::io("chmod of the gsyncd stub", e))?;
        let timeout = vol.opts.build_timeout;
        let started_servers: Vec<Result<Server>> = std::thread::scope(|s| {
            let handles: Vec<_> = servers
                .iter()
                .map(|h| {
                    let (root, files) = (&vol.dir, &files);
                    s.spawn(move || Server::start(lab, h, root, files, timeout))
                })
                .collect();
            handles
                .into_iter()
                .map(|j| {
                    j.join().unwrap_or_else(|_| {
                        Err(GlusterError::Client("server start thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut first_err = None;
        for r in started_servers {
            match r {
                Ok(s) => vol.servers.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            "glusterd up on every server"
        );
        vol.client = Some(ClientNs::start(
            lab,
            client,
            &vol.dir,
            &files.hosts,
            timeout,
        )?);
        vol.form_pool(deadline)?;
        tracing::debug!(ms = started.elapsed().as_millis(), "trusted pool formed");
        vol.create_volume(deadline)?;
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            "volume started, bricks online"
        );
        if vol.opts.wire_accurate {
            wire::wire_accurate(lab, client)?;
        }
        if vol.opts.mount_fuse {
            vol.mount_fuse()?;
        }
        tracing::info!(
            volume = %vol.opts.volume,
            servers = ?servers,
            client,
            ms = started.elapsed().as_millis(),
            "GlusterFS volume up"
        );
        Ok(vol)
    }

    fn form_pool(&self, deadline: Instant) -> Result<()> {
        let first = &self.servers[0];
        for other in &self.servers[1..] {
            first.cli_until(&["peer", "probe", &other.name], deadline)?;
        }
        first.wait_pool(self.servers.len(), deadline)
    }

    fn create_volume(&self, deadline: Instant) -> Result<()> {
        let first = &self.servers[0];
        let n = self.servers.len().to_string();
        let bricks: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{}:{}", s.name, s.brick().display()))
            .collect();
        let mut args = vec!["volume", "create", &self.opts.volume];
        if self.servers.len() > 1 {
            args.extend(["replica", &n]);
        }
        args.extend(["transport", "tcp"]);
        args.extend(bricks.iter().map(String::as_str));
        // force: the bricks are directories on the root filesystem.
        args.push("force");
        first.cli_until(&args, deadline)?;
        first.cli_until(&["volume", "start", &self.opts.volume], deadline)?;
        first.wait_bricks(&self.opts.volume, self.servers.len(), deadline)
    }

    /// Mount the FUSE client now (no-op when mounted).
    pub fn mount_fuse(&mut self) -> Result<()> {
        let server = self.servers[0].name.clone();
        let volume = self.opts.volume.clone();
        let timeout = self.opts.build_timeout;
        let lab = self.lab;
        self.client_mut()?
            .mount_fuse(lab, &server, &volume, timeout)
    }

    fn client_ref(&self) -> Result<&ClientNs> {
        self.client
            .as_ref()
            .ok_or_else(|| GlusterError::Client("the client is gone".into()))
    }

    fn client_mut(&mut self) -> Result<&mut ClientNs> {
        self.client
            .as_mut()
            .ok_or_else(|| GlusterError::Client("the client is gone".into()))
    }

    /// Volume name.
    pub fn name(&self) -> &str {
        &self.opts.volume
    }

    /// Server hosts, in brick order.
    pub fn servers(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.host.as_str()).collect()
    }

    /// The client host.
    pub fn client(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.host.as_str())
    }

    /// The peer's directory (under the lab's scratch directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The FUSE mount point: a mount only inside the client's mount namespace (reach
    /// it from outside as `/proc/<pid>/root/<mountpoint>` of [`Self::client_pid`]).
    pub fn mountpoint(&self) -> PathBuf {
        self.client
            .as_ref()
            .map_or_else(|| self.dir.join("client"), ClientNs::mountpoint)
    }

    /// A process in the client's mount namespace.
    pub fn client_pid(&self) -> u32 {
        self.client.as_ref().map_or(0, |c| c.anchor.pid())
    }

    /// Brick directory of server `host` (where its replica of each object lands).
    pub fn brick_of(&self, host: &str) -> Option<PathBuf> {
        self.servers
            .iter()
            .find(|s| s.host == host)
            .map(Server::brick)
    }

    /// What must be gone after drop.
    pub fn footprint(&self) -> Footprint {
        let mut ns: Vec<&procs::MountNs> = self.servers.iter().map(|s| &s.mount_ns).collect();
        if let Some(c) = &self.client {
            ns.push(&c.mount_ns);
        }
        Footprint {
            mount_namespaces: ns.iter().map(|n| n.id.clone()).collect(),
            dir: self.dir.clone(),
            held: ns.iter().map(|n| n.handle()).collect(),
        }
    }

    /// Write `puts` objects of `object_size` bytes through `mode` and measure them
    /// (see [`PeerBenchResult`]); then read every one back and compare.
    /// [`ClientMode::LocalDisk`] measures the baseline: the same program writing to
    /// the client host's local filesystem.
    pub fn bench(
        &mut self,
        mode: ClientMode,
        object_size: u64,
        puts: u64,
    ) -> Result<PeerBenchResult> {
        if mode == ClientMode::Fuse {
            self.mount_fuse()?;
        }
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let client = self.client_ref()?;
        let common = [
            format!("--object-size={object_size}"),
            format!("--puts={puts}"),
            format!("--name-prefix={}-run{run}", mode.peer_name()),
            format!("--chunk={}", self.opts.write_chunk),
        ];
        let mut args: Vec<String> = match mode {
            ClientMode::Fuse => vec![
                "fuse".into(),
                format!("--dir={}", client.mountpoint().display()),
            ],
            ClientMode::LocalDisk => {
                let local = client.dir.join("local");
                std::fs::create_dir_all(&local)
                    .map_err(|e| GlusterError::io(format!("creating {}", local.display()), e))?;
                vec![
                    "fuse".into(),
                    "--local".into(),
                    format!("--dir={}", local.display()),
                ]
            }
            ClientMode::Gfapi => vec![
                "gfapi".into(),
                format!("--volume={}", self.opts.volume),
                // An address: libgfapi's volfile fetch resolves names as IPv4.
                format!("--server={}", self.servers[0].addr),
                format!(
                    "--log={}",
                    client.dir.join(format!("log/gfapi-run{run}.log")).display()
                ),
            ],
        };
        args.extend(common);
        let stderr = client.dir.join(format!("log/client-run{run}.err"));
        let mut running = client.run_client(self.lab, &args, &stderr)?;
        let setup = self.opts.build_timeout;
        let phase = self.opts.phase_timeout;
        running.expect("ready", setup)?;

        let client_host = client.host.clone();
        let watched: Vec<String> = self.lab.hosts().keys().cloned().collect();
        let others: Vec<String> = watched
            .iter()
            .filter(|h| **h != client_host && !self.servers.iter().any(|s| s.host == **h))
            .cloned()
            .collect();
        let before = wire::hosts_counters(self.lab, &watched)?;
        running.say("go")?;
        let written = running.expect("written", phase)?;
        let after = wire::hosts_counters(self.lab, &watched)?;
        running.say("verify")?;
        let verified = running.expect("verified", phase)?;
        running.finish(Duration::from_secs(30))?;

        let put_ns: Vec<u64> = written["put_ns"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let bad: Vec<String> = verified["bad"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|b| b["name"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let delta = |h: &str| after[h].since(&before[h]);
        let egress = delta(&client_host).tx_bytes;
        let received = watched
            .iter()
            .filter(|h| **h != client_host)
            .map(|h| delta(h).rx_bytes)
            .sum();
        let at_others =
            (!others.is_empty()).then(|| others.iter().map(|h| delta(h).rx_bytes).sum());
        Ok(PeerBenchResult::from_measurements(
            mode,
            object_size,
            &put_ns,
            WireBytes {
                sender_egress: egress,
                received,
                at_non_targets: at_others,
            },
            bad,
            puts,
        ))
    }

    /// End everything now (also done on drop): unmount, end every process in the
    /// volume's mount namespaces by PID, delete its directory. Returns what could
    /// not be removed (empty on success).
    pub fn teardown(&mut self) -> Vec<String> {
        let footprint = self.footprint();
        if let Some(mut c) = self.client.take() {
            c.unmount_fuse();
            let left = procs::end_mount_ns(&c.mount_ns.id, Duration::from_secs(5));
            if !left.is_empty() {
                tracing::warn!(?left, "GlusterFS client processes survived SIGKILL");
            }
            drop(c);
        }
        for s in self.servers.drain(..) {
            let left = procs::end_mount_ns(&s.mount_ns.id, Duration::from_secs(5));
            if !left.is_empty() {
                tracing::warn!(host = %s.host, ?left, "GlusterFS server processes survived SIGKILL");
            }
            drop(s);
        }
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing the GlusterFS directory");
        }
        footprint.leftovers()
    }
}

impl Drop for GlusterVolume<'_> {
    fn drop(&mut self) {
        let left = self.teardown();
        if !left.is_empty() {
            tracing::warn!(?left, "GlusterFS peer left something behind");
        }
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| GlusterError::io(format!("writing {}", path.display()), e))
}
