//! The client side: a private mount namespace in the client host's network
//! namespace (held by an anchor process; the lab's hosts file over `/etc/hosts`),
//! the FUSE mount inside it, and the bench client program run inside it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::process::ChildGuard;

use super::error::{GlusterError, Result};
use super::procs;

/// The bench client program (Python: plain syscalls on the FUSE mount, or libgfapi
/// through ctypes), written into the peer's directory at build time.
pub(crate) const CLIENT_PY: &str = include_str!("../../gluster/client.py");

/// Bind the hosts file and the log directory, then hold the namespace.
/// Arguments: $1 hosts file, $2 log directory.
const ANCHOR: &str = "mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /var/log/glusterfs \
&& exec sleep infinity";

/// The client's mount namespace and what runs in it.
#[derive(Debug)]
pub(crate) struct ClientNs {
    /// Lab host name.
    pub host: String,
    /// The host's network namespace.
    pub netns: String,
    /// Client directory (`log/`, `mnt/`, `client.py`).
    pub dir: PathBuf,
    /// The process holding the mount namespace.
    pub anchor: ChildGuard,
    /// Its mount namespace (held open).
    pub mount_ns: procs::MountNs,
    /// The FUSE client, once mounted.
    pub fuse: Option<ChildGuard>,
}

impl ClientNs {
    /// Create the client's mount namespace on `host`.
    pub(crate) fn start(
        lab: &Lab,
        host: &str,
        root: &Path,
        hosts_file: &Path,
        timeout: Duration,
    ) -> Result<ClientNs> {
        let h = lab.try_host(host)?;
        let dir = root.join(format!("client-{host}"));
        for sub in ["log", "mnt"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(|e| GlusterError::io(format!("creating {}", d.display()), e))?;
        }
        let script = dir.join("client.py");
        std::fs::write(&script, CLIENT_PY)
            .map_err(|e| GlusterError::io(format!("writing {}", script.display()), e))?;
        let hosts = hosts_file.to_string_lossy();
        let log = dir.join("log").to_string_lossy().into_owned();
        let args = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            ANCHOR,
            "sh",
            &hosts,
            &log,
        ];
        let anchor = lab.spawn_with(&h.netns, &args, |c| {
            c.stdout(Stdio::null()).stderr(Stdio::piped());
        })?;
        if !procs::wait_for_comm(anchor.pid(), "sleep", timeout) {
            return Err(GlusterError::Client(format!(
                "the client namespace on {host} did not come up (unshare / mount --bind failed?)"
            )));
        }
        let mount_ns = procs::MountNs::of(anchor.pid())
            .ok_or_else(|| GlusterError::Client("client namespace anchor exited".into()))?;
        Ok(ClientNs {
            host: host.to_string(),
            netns: h.netns.clone(),
            dir,
            anchor,
            mount_ns,
            fuse: None,
        })
    }

    /// The FUSE mount point (a path that is a mount only inside this namespace).
    pub(crate) fn mountpoint(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    fn nsenter_args(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.anchor.pid().to_string(),
            "-m".into(),
            "--".into(),
        ]
    }

    /// Whether the FUSE mount is up (read from the anchor's mount table).
    pub(crate) fn fuse_mounted(&self) -> bool {
        let mp = self.mountpoint();
        let mp = mp.to_string_lossy();
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.anchor.pid())).is_ok_and(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(4) == Some(&mp.as_ref())
                    && l.split(" - ")
                        .nth(1)
                        .is_some_and(|r| r.starts_with("fuse.glusterfs"))
            })
        })
    }

    /// Mount the volume with the FUSE client (`glusterfs -N`, IPv6) and wait until
    /// the mount is there.
    pub(crate) fn mount_fuse(
        &mut self,
        lab: &Lab,
        server: &str,
        volume: &str,
        timeout: Duration,
    ) -> Result<()> {
        if self.fuse.is_some() {
            return Ok(());
        }
        let log = self.dir.join("log/fuse.log");
        let mut args = self.nsenter_args();
        args.extend([
            "glusterfs".into(),
            "-N".into(),
            "--xlator-option=transport.address-family=inet6".into(),
            format!("--volfile-server={server}"),
            format!("--volfile-id={volume}"),
            format!("--log-file={}", log.display()),
            self.mountpoint().to_string_lossy().into_owned(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = lab.spawn_with(&self.netns, &argv, |c| {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        })?;
        let deadline = Instant::now() + timeout;
        while !self.fuse_mounted() {
            if child.has_exited() || Instant::now() >= deadline {
                return Err(GlusterError::gluster(
                    format!("FUSE mount on {}", self.host),
                    procs::tail(&log, 15),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.fuse = Some(child);
        Ok(())
    }

    /// Unmount the FUSE mount (lazily) if it is there; errors are ignored (teardown).
    pub(crate) fn unmount_fuse(&mut self) {
        if self.fuse.is_none() {
            return;
        }
        let mut args = self.nsenter_args();
        args.extend([
            "umount".into(),
            "-l".into(),
            self.mountpoint().to_string_lossy().into_owned(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = crate::cmd::run(&argv) {
            tracing::warn!(error = %e, "unmounting the GlusterFS FUSE mount");
        }
        self.fuse = None;
    }

    /// Start the bench client (`python3 client.py ARGS`) in this namespace.
    pub(crate) fn run_client(&self, lab: &Lab, args: &[String], stderr: &Path) -> Result<Running> {
        let err = std::fs::File::create(stderr)
            .map_err(|e| GlusterError::io(format!("creating {}", stderr.display()), e))?;
        let mut full = self.nsenter_args();
        full.extend(["python3".into(), "-u".into()]);
        full.push(self.dir.join("client.py").to_string_lossy().into_owned());
        full.extend_from_slice(args);
        let argv: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut child = lab.spawn_with(&self.netns, &argv, |c| {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(err));
        })?;
        let stdin = child.child_mut().stdin.take();
        let stdout = child.child_mut().stdout.take();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(GlusterError::Client("no pipes to the client".into()));
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            child,
            stdin,
            lines: rx,
            stderr: stderr.to_path_buf(),
        })
    }
}

/// A running bench client, driven one phase at a time.
#[derive(Debug)]
pub(crate) struct Running {
    child: ChildGuard,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Running {
    fn failure(&self, what: &str) -> GlusterError {
        GlusterError::Client(format!("{what}; {}", procs::tail(&self.stderr, 15)))
    }

    /// Wait for the JSON line of phase `phase`.
    pub(crate) fn expect(&mut self, phase: &str, timeout: Duration) -> Result<serde_json::Value> {
        let line = match self.lines.recv_timeout(timeout) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                return Err(GlusterError::Timeout(format!(
                    "client phase `{phase}` after {timeout:?}; {}",
                    procs::tail(&self.stderr, 15)
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.stop_with(
                    nix::sys::signal::Signal::SIGTERM,
                    Duration::from_millis(500),
                );
                return Err(self.failure(&format!("exited before phase `{phase}`")));
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| self.failure(&format!("bad line {line:?}: {e}")))?;
        if v["phase"] != phase {
            return Err(self.failure(&format!("expected phase `{phase}`, got {line}")));
        }
        Ok(v)
    }

    /// Tell the client to go on (`go`, `verify`).
    pub(crate) fn say(&mut self, word: &str) -> Result<()> {
        writeln!(self.stdin, "{word}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| self.failure(&format!("writing `{word}` to the client: {e}")))
    }

    /// Wait for the client to exit (it does after the last phase).
    pub(crate) fn finish(mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.child.has_exited() {
            if Instant::now() >= deadline {
                return Err(GlusterError::Timeout(
                    "the bench client did not exit".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}
