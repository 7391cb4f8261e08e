//! Fsyncing a chunk file and its directory at the same time, with one
//! long-lived helper thread per disk thread.
//!
//! A chunk is durable when its file and the directory entry its rename
//! made are both on disk. The store fsyncs the two at once: on a journaling
//! file system one commit then carries the data and the rename, where an
//! fsync of the directory after the file's would cost a commit or a cache
//! flush of its own. The directory's fsync used to run on a thread spawned
//! for each chunk: under 64 MiB puts a `clone3`, a thread exit and the
//! unmapping of its stack per chunk, ~1.5 % of the machine's CPU at every
//! target (labs/RESULTS.md, "Chunk buffers from a pool"). [`DirSync`] keeps
//! that thread: it waits for a directory, fsyncs it and answers, while the
//! caller fsyncs the file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

/// A disk thread's companion for directory fsyncs (started on first use,
/// ended when the `DirSync` is dropped).
#[derive(Debug, Default)]
pub struct DirSync {
    worker: Option<Worker>,
}

#[derive(Debug)]
struct Worker {
    to: mpsc::Sender<PathBuf>,
    done: mpsc::Receiver<io::Result<()>>,
}

impl DirSync {
    /// Fsyncs `file` here and `dir` on the companion thread at the same
    /// time; the file's error first, else the directory's.
    pub fn sync_both(&mut self, file: &File, dir: &Path) -> (io::Result<()>, io::Result<()>) {
        let sent = self
            .worker()
            .and_then(|w| w.to.send(dir.to_owned()).map_err(|_| gone()))
            .is_ok();
        let f = file.sync_all();
        let d = match &self.worker {
            Some(w) if sent => w.done.recv().unwrap_or_else(|_| Err(gone())),
            // No companion (it could not start, or it died): here, after
            // the file's.
            _ => {
                self.worker = None;
                sync_dir(dir)
            }
        };
        (f, d)
    }

    fn worker(&mut self) -> io::Result<&Worker> {
        if self.worker.is_none() {
            let (to, rx) = mpsc::channel::<PathBuf>();
            let (tx, done) = mpsc::channel();
            thread::Builder::new()
                .name("subcast-dirsync".into())
                .spawn(move || {
                    for dir in rx {
                        if tx.send(sync_dir(&dir)).is_err() {
                            break;
                        }
                    }
                })?;
            self.worker = Some(Worker { to, done });
        }
        self.worker.as_ref().ok_or_else(gone)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

fn gone() -> io::Error {
    io::Error::other("the directory fsync thread stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_companion_serves_every_sync_and_reports_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DirSync::default();
        for i in 0..20 {
            let p = dir.path().join(format!("f{i}"));
            let f = File::create(&p).unwrap();
            let (a, b) = s.sync_both(&f, dir.path());
            a.unwrap();
            b.unwrap();
        }
        let f = File::create(dir.path().join("g")).unwrap();
        let (a, b) = s.sync_both(&f, &dir.path().join("no-such-dir"));
        a.unwrap();
        assert_eq!(b.unwrap_err().kind(), io::ErrorKind::NotFound);
        // Still there for the next one.
        let (a, b) = s.sync_both(&f, dir.path());
        a.unwrap();
        b.unwrap();
    }
}
