//! Writing and reading chunk files around the page cache (`O_DIRECT`).
//!
//! A buffered write copies the payload into page-cache pages the kernel
//! takes from its free memory, one 4 KiB page at a time. On the lab's
//! virtual machines a free page has usually been handed back to the host
//! (virtio-balloon free page reporting), and touching it again costs a
//! host fault: a buffered write of fresh data runs at ~270 MiB/s per thread
//! there, and during 64 MiB puts those copies were 37 % of both CPUs
//! (labs/RESULTS.md part (f), "Chunk files written around the page cache"). On any
//! machine they are one copy of every byte and a page allocation per 4 KiB
//! that a chunk store does not need: a stored chunk is read again later, if
//! ever, and every read verifies it from the disk anyway.
//!
//! With `O_DIRECT` the device reads the payload where it is when it
//! arrives in an aligned, padded [`ChunkBuf`] (a put's received chunk:
//! [`DirectIo::create_buf`]), else from one buffer per disk thread, aligned
//! and reused (so its pages stay resident), that it is copied into. The
//! length is padded to [`ALIGN`] for the write (with zeros) and the file
//! cut back to the payload's length after it. Durability is unchanged: the caller still fsyncs the
//! file (the device's cache, the size and the extents) and its directory.
//! Where the file system or device refuses `O_DIRECT` (tmpfs before Linux
//! 6.6, a device with larger sectors), [`DirectIo`] says so once and
//! writes through the page cache from then on.
//!
//! Reads of files that long go around the cache too ([`DirectIo::read`]):
//! a file written direct is not in the cache, and a buffered read would
//! fill fresh cache pages on the way (64 MiB gets took 400-650 ms that way
//! against 370 ms when the writes had left the data in the cache).

use crate::chunk_buf::ChunkBuf;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment of the buffer's address, the write's offset and its length:
/// a page, which covers 512- and 4096-octet logical sectors.
pub const ALIGN: usize = 4096;

/// Payloads from this many octets on are written direct by default: under
/// 64 MiB puts a 1 MiB data chunk's end of pass to third ACK took 0.29-0.33
/// of its buffered time, while a 256 KiB object took 1.03-1.27 times as
/// long direct (its device write and the fsync's commit one after the
/// other; labs/RESULTS.md part (f)).
pub const DEFAULT_MIN_DIRECT: usize = 512 * 1024;

/// How a disk thread writes chunk files: direct while the file system
/// takes it (payloads of at least `min_direct` octets), else buffered.
#[derive(Debug)]
pub struct DirectIo {
    direct: bool,
    min_direct: usize,
    /// Backing store of the aligned buffer (reused, never shrunk).
    buf: Vec<u8>,
    /// Files written around the page cache / through it.
    pub direct_writes: u64,
    pub buffered_writes: u64,
    /// Of the direct writes, those written from the caller's own aligned
    /// buffer (no copy).
    pub in_place_writes: u64,
    /// Files read around the page cache.
    pub direct_reads: u64,
}

impl DirectIo {
    /// `direct`: try `O_DIRECT` for payloads of `min_direct` octets or
    /// more (falls back by itself where refused).
    pub fn new(direct: bool, min_direct: usize) -> DirectIo {
        DirectIo {
            direct,
            min_direct,
            buf: Vec::new(),
            direct_writes: 0,
            buffered_writes: 0,
            in_place_writes: 0,
            direct_reads: 0,
        }
    }

    /// Whether writes of at least [`Self::min_direct`] octets try `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn min_direct(&self) -> usize {
        self.min_direct
    }

    /// Creates `path` (truncating it) holding exactly `payload`; the data
    /// is written but not yet synced. Returns the open file for the fsync.
    pub fn create(&mut self, path: &Path, payload: &[u8]) -> io::Result<File> {
        self.create_from(path, payload, None)
    }

    /// As [`Self::create`] with the payload of `buf`: an aligned buffer
    /// ([`ChunkBuf::direct_block`]) is written direct as it is, without
    /// the copy into this writer's own buffer.
    pub fn create_buf(&mut self, path: &Path, buf: &ChunkBuf) -> io::Result<File> {
        self.create_from(path, buf, buf.direct_block())
    }

    /// `block`, if given: `payload` followed by zeros to a multiple of
    /// [`ALIGN`], at an aligned address.
    fn create_from(
        &mut self,
        path: &Path,
        payload: &[u8],
        block: Option<&[u8]>,
    ) -> io::Result<File> {
        if self.wants_direct(payload.len()) {
            match self.create_direct(path, payload, block) {
                Ok(f) => {
                    self.direct_writes += 1;
                    return Ok(f);
                }
                Err(e) if refused(&e) => self.give_up(path, &e),
                Err(e) => return Err(e),
            }
        }
        let mut f = File::create(path)?;
        f.write_all(payload)?;
        self.buffered_writes += 1;
        Ok(f)
    }

    /// The whole content of `path`, read direct when it is long enough
    /// (one open either way: `O_DIRECT` is switched on the open file).
    pub fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        let len = usize::try_from(f.metadata()?.len()).map_err(io::Error::other)?;
        if self.wants_direct(len) {
            match self.read_direct(&f, path, len) {
                Ok(v) => {
                    self.direct_reads += 1;
                    return Ok(v);
                }
                Err(e) if refused(&e) => {
                    self.give_up(path, &e);
                    // Read from the start, wherever the refusal left `f`.
                    return std::fs::read(path);
                }
                Err(e) => return Err(e),
            }
        }
        let mut v = Vec::with_capacity(len);
        f.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Whether a file of `len` octets goes around the cache.
    fn wants_direct(&self, len: usize) -> bool {
        self.direct && len >= self.min_direct.max(1)
    }

    /// The file system refused `O_DIRECT` (on `path`): said once, and the
    /// page cache from now on.
    fn give_up(&mut self, path: &Path, e: &io::Error) {
        tracing::warn!(
            path = %path.display(),
            error = %e,
            "the store's file system refuses O_DIRECT: chunk files go through the page cache from now on"
        );
        self.direct = false;
    }

    /// `f` (`len` octets when it was opened) read with `O_DIRECT`.
    fn read_direct(&mut self, f: &File, path: &Path, len: usize) -> io::Result<Vec<u8>> {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        fcntl_setfl(f, fcntl_getfl(f)? | OFlags::DIRECT)?;
        // One block more than the length: a file that grew meanwhile is
        // seen to have (a short read is its end).
        let padded = (len / ALIGN + 1) * ALIGN;
        let block = self.aligned(padded);
        let mut got = 0;
        loop {
            match (&*f).read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // A direct read continues only from an aligned offset.
            if got % ALIGN != 0 || got == padded {
                break;
            }
        }
        if got >= padded {
            return Err(io::Error::other(format!(
                "{} grew while it was read",
                path.display()
            )));
        }
        Ok(block[..got].to_vec())
    }

    fn create_direct(
        &mut self,
        path: &Path,
        payload: &[u8],
        block: Option<&[u8]>,
    ) -> io::Result<File> {
        let padded = payload.len().div_ceil(ALIGN) * ALIGN;
        let block: &[u8] = match block {
            // What `ChunkBuf::direct_block` guarantees.
            Some(b) => {
                debug_assert!(
                    b.len() == padded
                        && (b.as_ptr() as usize).is_multiple_of(ALIGN)
                        && b.as_ptr() == payload.as_ptr()
                        && b[payload.len()..].iter().all(|&x| x == 0)
                );
                self.in_place_writes += 1;
                b
            }
            None => {
                let block = self.aligned(padded);
                block[..payload.len()].copy_from_slice(payload);
                block[payload.len()..].fill(0);
                block
            }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(o_direct())
            .open(path)?;
        f.write_all(block)?;
        if padded != payload.len() {
            f.set_len(payload.len() as u64)?;
        }
        Ok(f)
    }

    /// `len` octets (a multiple of [`ALIGN`]) of the reused buffer,
    /// starting at an address aligned to [`ALIGN`].
    fn aligned(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len + ALIGN {
            self.buf = vec![0; len + ALIGN];
        }
        let start = self.buf.as_ptr().align_offset(ALIGN);
        &mut self.buf[start..start + len]
    }
}

/// Errors that mean "not with `O_DIRECT` here" rather than a failing disk:
/// EINVAL (flag or alignment refused) and EOPNOTSUPP.
fn refused(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    code == Some(Errno::INVAL.raw_os_error()) || code == Some(Errno::OPNOTSUPP.raw_os_error())
}

fn o_direct() -> i32 {
    rustix::fs::OFlags::DIRECT.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths() -> Vec<usize> {
        vec![1, 511, 4095, 4096, 4097, 65_536, 262_144 + 7, 1 << 20]
    }

    #[test]
    fn files_hold_exactly_the_payload_whatever_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirectIo::new(true, 1);
        for (i, len) in lengths().into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
            let p = dir.path().join(format!("f{i}"));
            let f = w.create(&p, &payload).unwrap();
            f.sync_all().unwrap();
            drop(f);
            assert_eq!(std::fs::read(&p).unwrap(), payload, "length {len}");
        }
        assert_eq!(w.direct_writes + w.buffered_writes, lengths().len() as u64);
    }

    #[test]
    fn reads_return_exactly_the_file_whatever_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirectIo::new(true, 1);
        for (i, len) in lengths().into_iter().chain([0]).enumerate() {
            let payload: Vec<u8> = (0..len).map(|j| (j * 13 + i) as u8).collect();
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, &payload).unwrap();
            assert_eq!(w.read(&p).unwrap(), payload, "length {len}");
        }
        assert!(w.read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_shorter_file_over_a_longer_one_is_cut_to_its_payload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut w = DirectIo::new(true, 1);
        drop(w.create(&p, &[9u8; 20_000]).unwrap());
        drop(w.create(&p, &[3u8; 100]).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), vec![3u8; 100]);
    }

    #[test]
    fn small_payloads_go_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirectIo::new(true, 8192);
        drop(w.create(&dir.path().join("a"), &[1u8; 8191]).unwrap());
        assert_eq!((w.direct_writes, w.buffered_writes), (0, 1));
        drop(w.create(&dir.path().join("b"), &[1u8; 8192]).unwrap());
        assert_eq!(w.direct_writes + w.buffered_writes, 2);
        assert_eq!(
            std::fs::read(dir.path().join("b")).unwrap(),
            vec![1u8; 8192]
        );
    }

    #[test]
    fn buffered_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirectIo::new(false, 1);
        let p = dir.path().join("f");
        drop(w.create(&p, b"abc").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!((w.direct_writes, w.buffered_writes), (0, 1));
    }

    #[test]
    fn a_pooled_buffer_is_written_as_it_is_and_others_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::chunk_buf::ChunkPool::new(4, 64 << 20);
        for direct in [true, false] {
            let mut w = DirectIo::new(direct, 8192);
            for (i, len) in [100, 8192, 300_007, 1 << 20].into_iter().enumerate() {
                let mut b = pool.take(len);
                for (j, x) in b.iter_mut().enumerate() {
                    *x = (j * 11 + i) as u8;
                }
                let plain = ChunkBuf::from_vec(b.to_vec());
                for (k, buf) in [&b, &plain].into_iter().enumerate() {
                    let p = dir.path().join(format!("f{direct}{i}{k}"));
                    drop(w.create_buf(&p, buf).unwrap());
                    assert_eq!(std::fs::read(&p).unwrap(), &**buf, "length {len}");
                }
            }
            let direct_ones = if w.is_direct() { 3 } else { 0 };
            // Of the direct writes, those from the pooled buffers (not the
            // plain copies) went without a copy.
            assert_eq!(w.in_place_writes, direct_ones, "direct {direct}");
            assert_eq!(w.direct_writes, 2 * direct_ones);
            assert_eq!(w.direct_writes + w.buffered_writes, 8);
        }
    }

    /// The project's own disk (the tests' temporary directory is on it)
    /// takes O_DIRECT: the writes must not have fallen back. On a file
    /// system that refuses it the fallback is what is tested above.
    #[test]
    fn direct_on_a_file_system_that_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        let takes = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(o_direct())
            .open(&probe)
            .is_ok();
        let mut w = DirectIo::new(true, 1);
        drop(w.create(&dir.path().join("f"), &[1u8; 10_000]).unwrap());
        assert_eq!(w.read(&dir.path().join("f")).unwrap(), vec![1u8; 10_000]);
        if takes {
            assert_eq!(
                (w.direct_writes, w.buffered_writes, w.direct_reads),
                (1, 0, 1)
            );
            assert!(w.is_direct());
        } else {
            eprintln!("this file system refuses O_DIRECT: only the fallback ran");
            assert_eq!((w.direct_writes, w.buffered_writes), (0, 1));
        }
    }
}
