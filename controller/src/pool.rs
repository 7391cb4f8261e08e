//! A VLAN's rendezvous address pool (this controller's slice of it).
//!
//! Addresses are handed out fresh first, then least recently released
//! first, so a just-released group is reused as late as possible (stray
//! datagrams of the old transaction then meet no new receivers). The pool
//! never hands out an address that is in use. Memory grows with the
//! addresses actually used, not with the prefix size.

use ipnet::Ipv6Net;
use std::collections::{HashSet, VecDeque};
use std::net::Ipv6Addr;

#[derive(Debug, Clone)]
pub struct Pool {
    /// (first address, count) ranges of this slice, in order.
    ranges: Vec<(u128, u128)>,
    size: u128,
    /// Index of the next never-used address.
    cursor: u128,
    released: VecDeque<Ipv6Addr>,
    used: HashSet<Ipv6Addr>,
}

impl Pool {
    /// The pool of `nets`, restricted to slice `index` of `count`
    /// contiguous slices (controllers side by side take one each).
    pub fn new(nets: &[Ipv6Net], index: u32, count: u32) -> Pool {
        let all: Vec<(u128, u128)> = nets
            .iter()
            .map(|n| {
                let n = n.trunc();
                let host_bits = 128 - u32::from(n.prefix_len());
                let len = if host_bits >= 128 {
                    u128::MAX
                } else {
                    1u128 << host_bits
                };
                (u128::from(n.network()), len)
            })
            .collect();
        let total: u128 = all.iter().fold(0u128, |a, (_, l)| a.saturating_add(*l));
        let (i, n) = (u128::from(index), u128::from(count.max(1)));
        let start = total / n * i + i.min(total % n);
        let len = total / n + u128::from(i < total % n);
        // Cut [start, start + len) out of the concatenated ranges.
        let mut ranges = Vec::new();
        let (mut skip, mut want) = (start, len);
        for (first, l) in all {
            if want == 0 {
                break;
            }
            if skip >= l {
                skip -= l;
                continue;
            }
            let take = (l - skip).min(want);
            ranges.push((first + skip, take));
            want -= take;
            skip = 0;
        }
        Pool {
            size: ranges.iter().map(|r| r.1).sum(),
            ranges,
            cursor: 0,
            released: VecDeque::new(),
            used: HashSet::new(),
        }
    }

    /// This pool grown to `nets` (same slice), keeping what is in use, or
    /// `None` if `nets` does not keep every address of this slice at its
    /// index: only prefixes added after the existing ones (or an existing
    /// last range made longer) grow a pool in place.
    pub fn grown(&self, nets: &[Ipv6Net], index: u32, count: u32) -> Option<Pool> {
        let mut p = Pool::new(nets, index, count);
        let n = self.ranges.len();
        if p.ranges.len() < n {
            return None;
        }
        for (i, (old, new)) in self.ranges.iter().zip(&p.ranges).enumerate() {
            let last = i + 1 == n;
            if old.0 != new.0 || (old.1 != new.1 && !(last && new.1 > old.1)) {
                return None;
            }
        }
        p.cursor = self.cursor;
        p.released = self.released.clone();
        p.used = self.used.clone();
        Some(p)
    }

    /// Number of addresses in this slice.
    pub fn size(&self) -> u128 {
        self.size
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let v = u128::from(a);
        self.ranges.iter().any(|(f, l)| v >= *f && v - f < *l)
    }

    /// Index of the next never-used address: every address below it may
    /// have been handed out.
    pub fn cursor(&self) -> u128 {
        self.cursor
    }

    /// After a restart: addresses below `c` were handed out by an earlier
    /// run (they come back through [`Pool::reserve`] and [`Pool::release`]).
    pub fn set_cursor(&mut self, c: u128) {
        self.cursor = c.min(self.size);
    }

    /// Whether `a` is handed out.
    pub fn is_used(&self, a: Ipv6Addr) -> bool {
        self.used.contains(&a)
    }

    /// The `i`-th address of the slice (`i` < size).
    pub fn nth(&self, mut i: u128) -> Ipv6Addr {
        for (f, l) in &self.ranges {
            if i < *l {
                return Ipv6Addr::from(f + i);
            }
            i -= l;
        }
        unreachable!("index checked against size")
    }

    /// Takes a free address, or `None` when every address is leased.
    pub fn allocate(&mut self) -> Option<Ipv6Addr> {
        while self.cursor < self.size {
            let a = self.nth(self.cursor);
            self.cursor += 1;
            if self.used.insert(a) {
                return Some(a);
            }
        }
        while let Some(a) = self.released.pop_front() {
            if self.used.insert(a) {
                return Some(a);
            }
        }
        None
    }

    /// Marks `a` as used (restoring leases after a restart). False if it is
    /// outside this slice or already used.
    pub fn reserve(&mut self, a: Ipv6Addr) -> bool {
        self.contains(a) && self.used.insert(a)
    }

    /// Returns `a` to the pool. False if it was not in use.
    pub fn release(&mut self, a: Ipv6Addr) -> bool {
        if self.used.remove(&a) {
            self.released.push_back(a);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_each_address_once_until_exhausted() {
        let mut p = Pool::new(&[net("ff15::100/126")], 0, 1);
        assert_eq!(p.size(), 4);
        let got: HashSet<_> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|a| p.contains(*a)));
        assert_eq!(p.allocate(), None, "exhausted");
        let a: Ipv6Addr = "ff15::101".parse().unwrap();
        assert!(p.release(a));
        assert!(!p.release(a), "double release is refused");
        assert_eq!(p.allocate(), Some(a));
        assert_eq!(p.allocate(), None);
    }

    #[test]
    fn ipv4_pool_hands_out_distinct_macs() {
        use subcast_proto::{GroupAddr, MacAddr};
        // 239.92.128.0/24 in group form (the config's IPv4 pools).
        let mut p = Pool::new(&[net("::ffff:239.92.128.0/120")], 0, 1);
        assert_eq!(p.size(), 256);
        let got: Vec<_> = (0..256).map(|_| p.allocate().unwrap()).collect();
        let macs: HashSet<_> = got
            .iter()
            .map(|a| MacAddr::ipv4_multicast(a.ipv4_group().expect("IPv4 group")))
            .collect();
        assert_eq!(macs.len(), 256, "no two groups of the pool share a MAC");
        assert!(got.iter().all(|a| a.is_group()));
    }

    #[test]
    fn reuses_least_recently_released_first() {
        let mut p = Pool::new(&[net("ff15::/126")], 0, 1);
        let v: Vec<_> = (0..4).map(|_| p.allocate().unwrap()).collect();
        p.release(v[2]);
        p.release(v[0]);
        assert_eq!(p.allocate(), Some(v[2]));
        assert_eq!(p.allocate(), Some(v[0]));
    }

    #[test]
    fn fresh_addresses_before_released_ones() {
        let mut p = Pool::new(&[net("ff15::/126")], 0, 1);
        let a = p.allocate().unwrap();
        p.release(a);
        assert_ne!(p.allocate(), Some(a));
    }

    #[test]
    fn reserve_blocks_allocation() {
        let mut p = Pool::new(&[net("ff15::/127")], 0, 1);
        assert!(p.reserve("ff15::1".parse().unwrap()));
        assert!(!p.reserve("ff15::1".parse().unwrap()));
        assert!(!p.reserve("ff16::1".parse().unwrap()), "outside");
        assert_eq!(p.allocate(), Some("ff15::".parse().unwrap()));
        assert_eq!(p.allocate(), None);
    }

    #[test]
    fn slices_are_disjoint_and_cover_the_pool() {
        let nets = [net("ff15::/126"), net("ff15::1:0/127")]; // 6 addresses
        let mut seen = HashSet::new();
        for i in 0..4 {
            let mut p = Pool::new(&nets, i, 4);
            while let Some(a) = p.allocate() {
                assert!(seen.insert(a), "{a} in two slices");
            }
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn a_pool_grows_only_by_keeping_every_address_where_it_was() {
        let mut p = Pool::new(&[net("ff15::/127")], 0, 1);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        p.release(a);
        assert_eq!(p.allocate(), Some(a));
        assert_eq!(p.allocate(), None, "exhausted");
        let mut g = p
            .grown(&[net("ff15::/127"), net("ff16::/127")], 0, 1)
            .expect("a prefix added after the others");
        assert_eq!(g.size(), 4);
        assert!(g.is_used(a) && g.is_used(b));
        assert_eq!(g.allocate(), Some("ff16::".parse().unwrap()));
        assert!(
            p.grown(&[net("ff16::/127"), net("ff15::/127")], 0, 1)
                .is_none(),
            "reordered"
        );
        assert!(p.grown(&[net("ff15::/128")], 0, 1).is_none(), "shrunk");
        assert!(p.grown(&[net("ff17::/127")], 0, 1).is_none(), "replaced");
        // Two slices: a prefix added at the end moves slice 1's start.
        let s1 = Pool::new(&[net("ff15::/126")], 1, 2);
        assert!(
            s1.grown(&[net("ff15::/126"), net("ff16::/126")], 1, 2)
                .is_none()
        );
    }

    #[test]
    fn huge_prefix_is_lazy() {
        let mut p = Pool::new(&[net("ff15::/16")], 1, 2);
        assert_eq!(p.size(), 1u128 << 111);
        let a = p.allocate().unwrap();
        assert_eq!(a, "ff15:8000::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.in_use(), 1);
    }
}
