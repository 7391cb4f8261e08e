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

    fn nth(&self, mut i: u128) -> Ipv6Addr {
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
    fn huge_prefix_is_lazy() {
        let mut p = Pool::new(&[net("ff15::/16")], 1, 2);
        assert_eq!(p.size(), 1u128 << 111);
        let a = p.allocate().unwrap();
        assert_eq!(a, "ff15:8000::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.in_use(), 1);
    }
}
