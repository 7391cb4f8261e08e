//! Chunk buffers for a target's receives: aligned for `O_DIRECT` and reused
//! from a bounded pool.
//!
//! A receive used to reassemble its chunk in a fresh `vec![0; size]`: for a
//! 1 MiB chunk a new mapping, faulted in page by page as datagrams were
//! copied in and unmapped after the write (4-5 % of a target's CPU under
//! 64 MiB puts), and the disk thread then copied the whole payload into its
//! own aligned block for the `O_DIRECT` write (3 % more).
//!
//! A [`ChunkBuf`] from a [`ChunkPool`] starts at an address aligned to
//! [`ALIGN`] and has room for the payload padded to a multiple of
//! [`ALIGN`], the padding kept zero: [`ChunkBuf::direct_block`] is what the
//! `O_DIRECT` write takes as it is ([`crate::direct_io::DirectIo::create_buf`]).
//! Dropping the buffer, wherever its last user is (normally the disk
//! thread after the write; a receive that expired; a test), gives its
//! memory back to the pool, whose pages stay resident for the next chunk
//! of the same size class.
//!
//! Buffers come in size classes ([`class_of`]): the payload rounded up to
//! [`ALIGN`], then to a quarter of its power of two, so at most a quarter
//! more than the payload (a 1 MiB chunk takes exactly 1 MiB). A buffer is
//! taken again only for a payload of its own class.
//!
//! No `unsafe`: the alignment comes from over-allocating a `Vec<u8>` by
//! [`ALIGN`] octets and using the aligned part of it.

use crate::direct_io::ALIGN;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Capacity (a multiple of [`ALIGN`]) of the pooled buffer for a payload
/// of `len` octets: `len` rounded up to [`ALIGN`], then to a multiple of a
/// quarter of the largest power of two not above it.
pub fn class_of(len: usize) -> usize {
    let padded = padded(len).max(ALIGN);
    let pow2 = 1usize << (usize::BITS - 1 - padded.leading_zeros());
    let step = (pow2 / 4).max(ALIGN);
    padded.div_ceil(step) * step
}

/// `len` rounded up to a multiple of [`ALIGN`].
fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

/// What a pool did (for `stats.json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Buffers handed out again from the pool.
    pub reused: u64,
    /// Buffers allocated because none of the class was idle.
    pub allocated: u64,
    /// Buffers freed on return because the pool was at its bound.
    pub evicted: u64,
    /// Idle buffers held now, and their octets.
    pub idle: usize,
    pub idle_bytes: u64,
}

/// A bounded pool of aligned chunk buffers, shared by the receive loop
/// (which takes them) and the disk threads (which drop them after the
/// write). Cloning gives another handle on the same pool.
///
/// Bound: the pool keeps at most `max_idle` idle buffers and at most
/// `max_idle_bytes` octets of them (a node uses its `max_concurrent`
/// receives and its `max_receive_bytes`); a buffer given back beyond that
/// frees the oldest idle ones. Buffers in use are bounded by what the
/// node admits (receives and writes not yet done, at most
/// `max_receive_bytes` of payload, each buffer at most a quarter plus
/// [`ALIGN`] larger than its payload), so the pool adds at most its idle
/// bound to that.
#[derive(Debug, Clone)]
pub struct ChunkPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max_idle: usize,
    max_idle_bytes: u64,
    state: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    /// Oldest first: (class, backing memory of `class + ALIGN` octets).
    bufs: VecDeque<(usize, Vec<u8>)>,
    stats: PoolStats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Idle> {
        // A panic elsewhere leaves the list consistent: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes back the memory of a buffer of `class`.
    fn give_back(&self, class: usize, mem: Vec<u8>) {
        let mut evicted = Vec::new();
        {
            let mut s = self.lock();
            s.stats.idle += 1;
            s.stats.idle_bytes += mem.len() as u64;
            s.bufs.push_back((class, mem));
            while s.stats.idle > self.max_idle || s.stats.idle_bytes > self.max_idle_bytes {
                let Some((_, old)) = s.bufs.pop_front() else {
                    break;
                };
                s.stats.idle -= 1;
                s.stats.idle_bytes -= old.len() as u64;
                s.stats.evicted += 1;
                evicted.push(old);
            }
        }
        // Freed (unmapped) outside the lock.
        drop(evicted);
    }
}

impl ChunkPool {
    /// A pool keeping at most `max_idle` idle buffers of at most
    /// `max_idle_bytes` octets in all.
    pub fn new(max_idle: usize, max_idle_bytes: u64) -> ChunkPool {
        ChunkPool {
            shared: Arc::new(Shared {
                max_idle,
                max_idle_bytes,
                state: Mutex::new(Idle::default()),
            }),
        }
    }

    /// A buffer holding `len` octets, aligned to [`ALIGN`] with its
    /// padding zero: an idle one of the class of `len` if there is one,
    /// else a new one. Its content (up to `len`) is whatever the last user
    /// left: the caller overwrites all of it (a reassembly completes only
    /// once every datagram is in). An empty payload takes no buffer.
    pub fn take(&self, len: usize) -> ChunkBuf {
        if len == 0 {
            return ChunkBuf::from_vec(Vec::new());
        }
        let class = class_of(len);
        let found = {
            let mut s = self.shared.lock();
            // The most recently returned first: its pages are the warmest.
            let i = s.bufs.iter().rposition(|(c, _)| *c == class);
            match i.and_then(|i| s.bufs.remove(i)) {
                Some((_, mem)) => {
                    s.stats.idle -= 1;
                    s.stats.idle_bytes -= mem.len() as u64;
                    s.stats.reused += 1;
                    Some(mem)
                }
                None => {
                    s.stats.allocated += 1;
                    None
                }
            }
        };
        let mem = found.unwrap_or_else(|| vec![0; class + ALIGN]);
        ChunkBuf::aligned_in(mem, class, len, self.shared.clone())
    }

    pub fn stats(&self) -> PoolStats {
        self.shared.lock().stats
    }
}

/// One chunk's payload: either in an aligned buffer (from a [`ChunkPool`],
/// to which it goes back when dropped) or in a plain `Vec<u8>` (a chunk
/// fetched back by a repair, a client's get). Dereferences to the payload.
pub struct ChunkBuf {
    mem: Vec<u8>,
    /// Where the payload starts in `mem` (aligned for an aligned buffer).
    start: usize,
    len: usize,
    /// An aligned buffer's class (`mem` has room for it after `start`) and
    /// the pool it goes back to; `None` for a plain one.
    pooled: Option<(usize, Arc<Shared>)>,
}

impl ChunkBuf {
    /// A plain buffer holding `v` (no copy; not aligned, not pooled).
    pub fn from_vec(v: Vec<u8>) -> ChunkBuf {
        ChunkBuf {
            len: v.len(),
            mem: v,
            start: 0,
            pooled: None,
        }
    }

    /// A plain buffer of `len` zero octets.
    pub fn zeroed(len: usize) -> ChunkBuf {
        Self::from_vec(vec![0; len])
    }

    /// `mem` (at least `class + ALIGN` octets) as an aligned buffer of
    /// `len` octets (`len <= class`), its padding zeroed, going back to
    /// `home` when dropped.
    fn aligned_in(mem: Vec<u8>, class: usize, len: usize, home: Arc<Shared>) -> ChunkBuf {
        debug_assert!(len <= class && mem.len() >= class + ALIGN);
        let addr = mem.as_ptr() as usize;
        let start = addr.next_multiple_of(ALIGN) - addr;
        let mut b = ChunkBuf {
            mem,
            start,
            len,
            pooled: Some((class, home)),
        };
        let (from, to) = (start + len, start + padded(len));
        b.mem[from..to].fill(0);
        b
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload followed by zeros up to a multiple of [`ALIGN`],
    /// starting at an address aligned to [`ALIGN`]: what an `O_DIRECT`
    /// write takes without a copy. `None` for a plain buffer.
    pub fn direct_block(&self) -> Option<&[u8]> {
        self.pooled.as_ref()?;
        Some(&self.mem[self.start..self.start + padded(self.len)])
    }

    /// The payload as a `Vec` (no copy for a plain buffer; an aligned one
    /// is copied and goes back to its pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.pooled.is_none() {
            let mut v = std::mem::take(&mut self.mem);
            v.truncate(self.len);
            return v;
        }
        self.to_vec()
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let Some((class, home)) = self.pooled.take() {
            home.give_back(class, std::mem::take(&mut self.mem));
        }
    }
}

impl std::ops::Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for ChunkBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // Only the payload: the padding after it stays zero.
        &mut self.mem[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBuf")
            .field("len", &self.len)
            // A plain buffer has no class.
            .field("class", &self.pooled.as_ref().map(|(c, _)| c))
            .finish()
    }
}

/// A plain copy of the payload (not from the pool).
impl Clone for ChunkBuf {
    fn clone(&self) -> ChunkBuf {
        ChunkBuf::from_vec(self.to_vec())
    }
}

/// Equal payloads, however held.
impl PartialEq for ChunkBuf {
    fn eq(&self, o: &ChunkBuf) -> bool {
        **self == **o
    }
}

impl Eq for ChunkBuf {}

impl PartialEq<Vec<u8>> for ChunkBuf {
    fn eq(&self, o: &Vec<u8>) -> bool {
        **self == **o
    }
}

impl PartialEq<[u8]> for ChunkBuf {
    fn eq(&self, o: &[u8]) -> bool {
        **self == *o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: &[u8]) -> usize {
        b.as_ptr() as usize
    }

    #[test]
    fn classes_are_aligned_and_waste_at_most_a_quarter() {
        assert_eq!(class_of(1), ALIGN);
        assert_eq!(class_of(ALIGN), ALIGN);
        assert_eq!(class_of(ALIGN + 1), 2 * ALIGN);
        assert_eq!(class_of(1 << 20), 1 << 20);
        assert_eq!(class_of((1 << 20) - 100), 1 << 20);
        assert_eq!(class_of((1 << 20) + 1), (1 << 20) + (1 << 18));
        for len in (1..40_000_000).step_by(99_991) {
            let c = class_of(len);
            assert_eq!(c % ALIGN, 0, "{len}");
            assert!(c >= len, "{len}");
            assert!(c <= padded(len) + padded(len) / 4, "{len}: {c}");
        }
    }

    #[test]
    fn buffers_are_aligned_with_zero_padding() {
        let pool = ChunkPool::new(4, 64 << 20);
        for len in [1, 100, 4095, 4096, 4097, 300_000, 1 << 20] {
            let mut b = pool.take(len);
            assert_eq!(b.len(), len);
            b.fill(0xAB);
            let blk = b.direct_block().expect("aligned");
            assert_eq!(addr(blk) % ALIGN, 0, "{len}");
            assert_eq!(blk.len(), padded(len));
            assert_eq!(&blk[..len], &*b);
            assert!(blk[len..].iter().all(|&x| x == 0), "{len}");
        }
        assert_eq!(pool.take(0).len(), 0);
        assert!(pool.take(0).direct_block().is_none());
    }

    #[test]
    fn a_returned_buffer_is_reused_for_its_class() {
        let pool = ChunkPool::new(4, 64 << 20);
        let mut b = pool.take(1 << 20);
        b.fill(7);
        let first = addr(&b);
        drop(b);
        assert_eq!(pool.stats().idle, 1);
        // A payload of the same class, shorter: the same memory, its new
        // padding zeroed over what the last user left.
        let b = pool.take((1 << 20) - 5000);
        assert_eq!(addr(&b), first);
        let blk = b.direct_block().unwrap();
        assert!(blk[b.len()..].iter().all(|&x| x == 0));
        assert_eq!(
            pool.stats(),
            PoolStats {
                reused: 1,
                allocated: 1,
                evicted: 0,
                idle: 0,
                idle_bytes: 0
            }
        );
    }

    #[test]
    fn a_buffer_of_another_class_is_not_handed_out() {
        let pool = ChunkPool::new(4, 64 << 20);
        let small = pool.take(64 << 10);
        let small_at = addr(&small);
        drop(small);
        // Larger than the idle buffer: a new one, the small one stays.
        let big = pool.take(1 << 20);
        assert_ne!(addr(&big), small_at);
        assert_eq!(pool.stats().idle, 1);
        drop(big);
        // Smaller than the idle 1 MiB one: not given a 1 MiB buffer.
        let tiny = pool.take(100);
        assert_eq!(tiny.direct_block().unwrap().len(), ALIGN);
        assert_eq!((pool.stats().allocated, pool.stats().reused), (3, 0));
        drop(tiny);
        // Each class finds its own again.
        assert_eq!(addr(&pool.take(60 << 10)), small_at);
        assert_eq!(pool.stats().reused, 1);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let pool = ChunkPool::new(3, 64 << 20);
        let bufs: Vec<ChunkBuf> = (0..5).map(|_| pool.take(1 << 20)).collect();
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.idle, s.evicted), (3, 2));
        assert_eq!(s.idle_bytes, 3 * ((1 << 20) + ALIGN as u64));
        // And by octets: two 1 MiB buffers do not fit in 1.5 MiB.
        let pool = ChunkPool::new(10, 3 << 19);
        drop((pool.take(1 << 20), pool.take(1 << 20)));
        assert_eq!((pool.stats().idle, pool.stats().evicted), (1, 1));
        // A buffer dropped on another thread comes back too.
        let b = pool.take(1 << 20);
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(pool.stats().idle, 1);
    }

    #[test]
    fn plain_buffers_convert_without_a_copy() {
        let v = vec![1u8, 2, 3];
        let at = v.as_ptr();
        let b = ChunkBuf::from_vec(v);
        assert!(b.direct_block().is_none());
        assert_eq!(b, vec![1, 2, 3]);
        assert_eq!(b.clone(), b);
        let v = b.into_vec();
        assert_eq!(v.as_ptr(), at);
        let pool = ChunkPool::new(1, 1 << 20);
        let mut p = pool.take(3);
        p.copy_from_slice(&[1, 2, 3]);
        assert_eq!(p.into_vec(), vec![1, 2, 3]);
        assert_eq!(pool.stats().idle, 1);
    }
}
