//! One GlusterFS server: `glusterd` in a lab host's namespace, with its own mount
//! namespace where per-server directories are bind-mounted over `/var/lib/glusterd`,
//! `/var/log/glusterfs` and `/run`, and a lab-wide hosts file over `/etc/hosts`; and
//! the `gluster` CLI run inside it through `nsenter`.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::process::ChildGuard;

use super::error::{GlusterError, Result};
use super::procs;

/// The management port glusterd listens on.
pub const GLUSTERD_PORT: u16 = 24007;

/// `glusterd.vol` for the lab: IPv6 (the lab's hosts have only `fd00:5c::N`),
/// otherwise Debian's defaults.
pub(crate) const GLUSTERD_VOL: &str = "\
volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport-type socket
    option transport.address-family inet6
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
";

/// Stands in for geo-replication's `gsyncd` inside the servers' mount namespaces.
/// glusterd runs `gsyncd --version` and then several `gsyncd --config-set-rx ...`
/// (Python) at start-up, ~20 s of CPU for three servers on a busy 2-core machine
/// (measured: peers connected after 25 s, 1.8 s with the stub). Geo-replication
/// plays no part in what the peer measures. glusterd refuses to start when the
/// version line lacks "gsyncd".
pub(crate) const GSYNCD_STUB: &str =
    "#!/bin/sh\n# subcast lab: geo-replication is not used\necho 'gsyncd.py 10.3 (stub)'\n";

/// Bind-mount the per-server directories (and the gsyncd stub over `$7` when
/// given), then become glusterd (no daemonizing). Arguments: $1 lib, $2 log, $3 run,
/// $4 hosts file, $5 glusterd.vol, $6 gsyncd stub, $7 gsyncd path or "".
const START: &str = "mount --bind \"$1\" /var/lib/glusterd && mount --bind \"$2\" /var/log/glusterfs \
&& mount --bind \"$3\" /run && mount --bind \"$4\" /etc/hosts \
&& { [ -z \"$7\" ] || mount --bind \"$6\" \"$7\"; } && exec glusterd -N -f \"$5\"";

/// Where Debian puts geo-replication's `gsyncd` (`<libdir>/glusterfs/gsyncd`).
pub(crate) fn gsyncd_path() -> Option<PathBuf> {
    super::install::lib_dirs()
        .into_iter()
        .map(|d| d.join("glusterfs/gsyncd"))
        .find(|p| p.exists())
}

/// Files every server uses.
#[derive(Debug, Clone)]
pub(crate) struct ServerFiles {
    /// The lab's hosts file (bound over `/etc/hosts`).
    pub hosts: PathBuf,
    /// `glusterd.vol` ([`GLUSTERD_VOL`]).
    pub volfile: PathBuf,
    /// [`GSYNCD_STUB`], executable.
    pub gsyncd_stub: PathBuf,
    /// The real gsyncd to hide, if installed.
    pub gsyncd: Option<PathBuf>,
}

/// A running glusterd.
#[derive(Debug)]
pub(crate) struct Server {
    /// Lab host name (`X3`).
    pub host: String,
    /// Its GlusterFS host name (lower case, from the hosts file).
    pub name: String,
    /// Its address.
    pub addr: Ipv6Addr,
    /// Its directory (`lib/`, `log/`, `run/`, `brick/`).
    pub dir: PathBuf,
    /// The glusterd process.
    pub glusterd: ChildGuard,
    /// glusterd's private mount namespace (every process of this server is in it),
    /// held open.
    pub mount_ns: procs::MountNs,
}

/// The GlusterFS host name of lab host `host` (`index`: its lab index).
///
/// GlusterFS takes only valid DNS host names: letters, digits and `-`,
/// a label starting with a letter and not ending with `-`. Topology names
/// may hold `_` and start with a digit (`peer probe m_2` failed with "m_2 is
/// an invalid address"), so `_` becomes `-`, the name gets a leading `h-`
/// where it does not start with a letter and a trailing `h` where it would
/// end with `-`. Lower case, as DNS compares names; two hosts whose names
/// differ only in case get their lab index appended (`x3-3`, `X3-4`).
pub(crate) fn gluster_name(host: &str, index: u16, others: &[&str]) -> String {
    let base = |h: &str| {
        let mut s: String = h
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
            s.insert_str(0, "h-");
        }
        if s.ends_with('-') {
            s.push('h');
        }
        s
    };
    let name = base(host);
    let clash = others.iter().any(|o| *o != host && base(o) == name);
    if clash {
        format!("{name}-{index}")
    } else {
        name
    }
}

/// [`gluster_name`] of `host` among the hosts of `lab`.
fn gluster_name_in(lab: &Lab, host: &str, index: u16) -> String {
    let names: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    gluster_name(host, index, &names)
}

impl Server {
    /// Start glusterd for `host`, with its directories under `root/HOST`, and wait
    /// until it listens on [`GLUSTERD_PORT`].
    pub(crate) fn start(
        lab: &Lab,
        host: &str,
        root: &Path,
        files: &ServerFiles,
        timeout: Duration,
    ) -> Result<Server> {
        let h = lab.try_host(host)?;
        let dir = root.join(host);
        for sub in ["lib", "log", "run", "brick"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(|e| GlusterError::io(format!("creating {}", d.display()), e))?;
        }
        let out_path = dir.join("glusterd.out");
        let out = std::fs::File::create(&out_path)
            .map_err(|e| GlusterError::io(format!("creating {}", out_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| GlusterError::io("duplicating a file handle", e))?;
        let p = |s: &str| dir.join(s).to_string_lossy().into_owned();
        let (lib, log, run) = (p("lib"), p("log"), p("run"));
        let hosts = files.hosts.to_string_lossy();
        let vol = files.volfile.to_string_lossy();
        let stub = files.gsyncd_stub.to_string_lossy();
        let gsyncd = files
            .gsyncd
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let args = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            START,
            "sh",
            &lib,
            &log,
            &run,
            &hosts,
            &vol,
            &stub,
            &gsyncd,
        ];
        let glusterd = lab.spawn_with(&h.netns, &args, |c| {
            c.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        })?;
        let pid = glusterd.pid();
        let deadline = Instant::now() + timeout;
        let failed = |what: &str| {
            GlusterError::gluster(
                format!("glusterd on {host}"),
                format!(
                    "{what}\n{}\n{}",
                    procs::tail(&out_path, 10),
                    procs::tail(&dir.join("log/glusterd.log"), 10)
                ),
            )
        };
        if !procs::wait_for_comm(pid, "glusterd", timeout) {
            return Err(failed("did not start"));
        }
        let mount_ns = procs::MountNs::of(pid).ok_or_else(|| failed("exited at once"))?;
        while !procs::listening(pid, GLUSTERD_PORT) {
            if Instant::now() >= deadline || procs::comm_of(pid).is_none() {
                return Err(failed(&format!("not listening on port {GLUSTERD_PORT}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server {
            host: host.to_string(),
            name: gluster_name_in(lab, host, h.index),
            addr: h.ipv6,
            dir,
            glusterd,
            mount_ns,
        })
    }

    /// The brick directory.
    pub(crate) fn brick(&self) -> PathBuf {
        self.dir.join("brick")
    }

    /// Run `gluster --mode=script ARGS` inside this server (its mount and network
    /// namespaces); stdout on success. The CLI gives up after 30 s (its own default
    /// is 120 s when glusterd never answers).
    pub(crate) fn cli(&self, args: &[&str]) -> Result<String> {
        let pid = self.glusterd.pid().to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-m", "-n", "--"];
        full.extend(["gluster", "--mode=script", "--timeout=30"]);
        full.extend_from_slice(args);
        let out = std::process::Command::new(full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| GlusterError::io(format!("running `{}`", full.join(" ")), e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        // The CLI prints some failures ("volume create: V: failed: ...") on stdout:
        // both streams are in the error, so that `transient` sees them too.
        Err(GlusterError::gluster(
            args.join(" "),
            format!(
                "`{}` failed ({}): {} {}\nglusterd.log: {}",
                full.join(" "),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim(),
                procs::tail(&self.dir.join("log/glusterd.log"), 5)
            ),
        ))
    }

    /// Run a CLI command, again while it fails for a passing reason (a peer still
    /// connecting, another transaction holding the cluster lock) until `deadline`;
    /// any other failure is returned at once.
    pub(crate) fn cli_until(&self, args: &[&str], deadline: Instant) -> Result<String> {
        loop {
            match self.cli(args) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline || !transient(&e.to_string()) => {
                    return Err(e);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Poll `gluster pool list` until `n` members (itself included) are Connected.
    pub(crate) fn wait_pool(&self, n: usize, deadline: Instant) -> Result<()> {
        loop {
            let text = self.cli(&["pool", "list"]).unwrap_or_default();
            let connected = text
                .lines()
                .skip(1)
                .filter(|l| l.split_whitespace().last() == Some("Connected"))
                .count();
            if connected >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(GlusterError::Timeout(format!(
                    "{connected} of {n} peers connected:\n{text}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll `gluster volume status VOL --xml` until `n` bricks are online.
    pub(crate) fn wait_bricks(&self, volume: &str, n: usize, deadline: Instant) -> Result<()> {
        loop {
            let xml = self
                .cli(&["volume", "status", volume, "--xml"])
                .unwrap_or_default();
            let online = bricks_online(&xml);
            if online >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(GlusterError::Timeout(format!(
                    "{online} of {n} bricks of volume {volume} online"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether a CLI failure is worth retrying: glusterd not answering yet, a peer not
/// connected yet, or the cluster-wide lock held by another transaction.
pub(crate) fn transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection failed",
        "not connected",
        "transport endpoint",
        "another transaction",
        "locking failed",
        "is not in 'peer in cluster' state",
        "is not in \"peer in cluster\" state",
        "error : request timed out",
    ]
    .iter()
    .any(|t| m.contains(t))
}

fn xml_field<'a>(chunk: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = chunk.find(&open)? + open.len();
    let len = chunk[start..].find(&close)?;
    Some(&chunk[start..start + len])
}

/// Bricks (nodes whose path is absolute, not the self-heal daemons) with status 1 in
/// `gluster volume status --xml`.
pub(crate) fn bricks_online(xml: &str) -> usize {
    xml.split("<node>")
        .skip(1)
        .filter(|n| xml_field(n, "path").is_some_and(|p| p.starts_with('/')))
        .filter(|n| xml_field(n, "status") == Some("1"))
        .count()
}

/// The hosts file every server and the client see: each lab host by its GlusterFS
/// name (IPv6 only: the servers resolve names with `inet6`).
pub(crate) fn hosts_file(lab: &Lab) -> String {
    let mut s = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for (name, h) in lab.hosts() {
        s.push_str(&format!(
            "{} {}\n",
            h.ipv6,
            gluster_name_in(lab, name, h.index)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_online_bricks_not_daemons() {
        let xml = "<volStatus><volumes><volume><volName>v</volName><nodeCount>4</nodeCount>\
<node><hostname>x1</hostname><path>/tmp/a/brick</path><status>1</status><port>5</port></node>\
<node><hostname>x3</hostname><path>/tmp/b/brick</path><status>0</status><port>N/A</port></node>\
<node><hostname>x4</hostname><path>/tmp/c/brick</path><status>1</status></node>\
<node><hostname>Self-heal Daemon</hostname><path>localhost</path><status>1</status></node>\
</volume></volumes></volStatus>";
        assert_eq!(bricks_online(xml), 2);
        assert_eq!(bricks_online(""), 0);
    }

    #[test]
    fn retries_only_passing_failures() {
        assert!(transient(
            "GlusterFS peer probe x3: command failed: Connection failed. Please check if gluster daemon is operational."
        ));
        assert!(transient(
            "volume create: subcast: failed: Host x4 is not in 'Peer in Cluster' state"
        ));
        assert!(transient("Another transaction is in progress for subcast."));
        assert!(!transient(
            "volume create: no/such: failed: Volume name should not contain \"/\" character"
        ));
        assert!(!transient(
            "volume start: v: failed: Volume v does not exist"
        ));
    }

    #[test]
    fn volfile_is_ipv6() {
        assert!(GLUSTERD_VOL.contains("\n    option transport.address-family inet6\n"));
        assert_eq!(gluster_name("X3", 3, &["X1", "X3"]), "x3");
    }

    #[test]
    fn gluster_names_are_valid_host_names_and_distinct() {
        let hosts = ["m_2", "9", "a_", "X3", "x3", "k7"];
        let names: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| gluster_name(h, i as u16 + 1, &hosts))
            .collect();
        assert_eq!(names, ["m-2", "h-9", "a-h", "x3-4", "x3-5", "k7"]);
        for n in &names {
            assert!(n.starts_with(|c: char| c.is_ascii_lowercase()), "{n}");
            assert!(!n.ends_with('-'), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
    }
}
