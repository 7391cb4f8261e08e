//! Processes the lab starts: ended by PID when their guard drops.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// PIDs of processes a lab started and not yet reaped by a guard.
pub(crate) type PidList = Arc<Mutex<Vec<u32>>>;

/// A running process started in a lab namespace. Dropping it sends SIGTERM, waits up
/// to one second, then SIGKILL, by PID.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    pids: PidList,
    what: String,
}

impl ChildGuard {
    pub(crate) fn new(child: Child, pids: PidList, what: String) -> Self {
        if let Ok(mut v) = pids.lock() {
            v.push(child.id());
        }
        ChildGuard {
            child: Some(child),
            pids,
            what,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The underlying child (for its stdout/stderr pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("ChildGuard holds its child until dropped")
    }

    /// Whether the process has exited (reaps it if so). A reaped PID is dropped from
    /// the lab's list at once: the kernel may give it to another process (PIDs wrap
    /// at 32768 here), which the lab's teardown must never signal.
    pub fn has_exited(&mut self) -> bool {
        let pid = self.pid();
        let gone = matches!(self.child_mut().try_wait(), Ok(Some(_)));
        if gone {
            self.forget(pid);
        }
        gone
    }

    /// Send `sig`, wait up to `grace` for it to exit, then SIGKILL. Returns the exit
    /// status if it could be collected.
    pub fn stop_with(&mut self, sig: Signal, grace: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let pid = child.id();
        if let Ok(Some(st)) = child.try_wait() {
            self.forget(pid);
            return Some(st);
        }
        if let Ok(p) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(p), sig);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.forget(pid);
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!(pid, what = %self.what, "did not exit in time, sending SIGKILL");
        let _ = child.kill();
        let st = child.wait().ok();
        self.forget(pid);
        st
    }

    /// Take the child out; the caller becomes responsible for ending it.
    pub fn into_child(mut self) -> Child {
        let child = self.child.take().expect("ChildGuard holds its child");
        self.forget(child.id());
        child
    }

    fn forget(&self, pid: u32) {
        if let Ok(mut v) = self.pids.lock() {
            v.retain(|p| *p != pid);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_with(Signal::SIGTERM, Duration::from_secs(1));
        }
    }
}

/// SIGKILL a PID (used at lab teardown for processes whose guard is still alive or
/// that live in one of the lab's namespaces). Never signals this process itself.
pub(crate) fn kill_pid(pid: u32) {
    if pid == std::process::id() {
        return;
    }
    if let Ok(p) = i32::try_from(pid)
        && p > 1
    {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}
