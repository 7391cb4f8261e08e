//! The policies without a controller, on the same fabric, load and switch
//! limits (the lab bench's `lazy-mld` column and plain unicast):
//!
//! * `lazy-mld` (EdgeFS-like): the group is a hash of the target set; the
//!   targets join it with MLD and the sender waits [`JOIN_DELAY`] and until
//!   the snooping switches added the entry. MLD reports travel to the
//!   querier across every trunk of the VLAN, so every switch learns every
//!   joined group (as the lab's three bridges did: 20 groups on each). Each
//!   sender keeps the joins of its last [`JOIN_CACHE`] target sets (an evicted
//!   set is left: the entry goes when no sender's cache holds it). A switch
//!   whose table is full cannot learn a new group: the put falls back to
//!   unicast (a refusal, `table-full`). Entry adds and removes go through
//!   the same per-switch update rate limit as the controller's changes.
//! * `unicast`: R copies from the sender, no switch state.

use crate::fabric::Fabric;
use crate::load::{Arrivals, Put};
use crate::setup::NegGroup;
use crate::stats::{Stats, SwitchStats};
use crate::world::RunParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Wait after the joins before the group counts as ready (the lab's).
pub const JOIN_DELAY_NS: u64 = 10_000_000;
/// What a join-cache hit costs a back-to-back client: a lookup (the lab's
/// clients made ~1.5 million a second each).
pub const CACHE_HIT_NS: u64 = 1_000;
/// Target sets whose joins one sender keeps (the lab's).
pub const JOIN_CACHE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    LazyMld,
    Unicast,
}

#[derive(Debug)]
enum Ev {
    Arrival,
    Client(usize),
    /// Switch `sw`'s table gets (`true`) or loses a group.
    Change(usize, bool),
}

#[derive(Debug, Default)]
struct Queue {
    q: BTreeMap<(u64, u64), Ev>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, t: u64, e: Ev) {
        self.seq += 1;
        self.q.insert((t, self.seq), e);
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// Senders' caches holding the set.
    refs: u32,
    /// When every switch has the entry.
    ready_ns: u64,
}

/// Runs `mode` over the measured window (no warm-up needed: nothing is
/// installed ahead).
pub fn run(
    f: &Fabric,
    groups: &[NegGroup],
    p: &RunParams,
    mode: Mode,
    budget: u32,
) -> (Stats, u64, u64) {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let n_sw = f.switches.len();
    let mut stats = Stats {
        switches: vec![SwitchStats::default(); n_sw],
        ..Stats::default()
    };
    // The load runs `load_warmup_s` before the measured window.
    let lw = (p.load_warmup_s * 1e9) as u64;
    let end = lw + (p.seconds * 1e9) as u64;
    let mut scratch = Stats::default();
    let mut sw_stats = vec![SwitchStats::default(); n_sw];
    let period = 1_000_000_000 / u64::from(p.update_rate.max(1));
    let mut q = Queue::default();
    match p.arrivals {
        Arrivals::Open { .. } => q.push(0, Ev::Arrival),
        Arrivals::Closed { clients } => {
            for c in 0..clients {
                q.push(0, Ev::Client(c));
            }
        }
    }
    let mut busy = vec![0u64; n_sw];
    let mut table = vec![0usize; n_sw];
    // Installed or being installed, on every switch alike.
    let mut reserved = 0usize;
    let mut entries: HashMap<Vec<usize>, Entry> = HashMap::new();
    let mut caches: HashMap<usize, VecDeque<Vec<usize>>> = HashMap::new();
    let payload = u128::from(p.payload_bytes);
    let one_change =
        |q: &mut Queue, busy: &mut [u64], sws: &mut [SwitchStats], now: u64, add: bool| -> u64 {
            let mut ready = now;
            for (sw, b) in busy.iter_mut().enumerate() {
                let t = (*b).max(now) + period;
                *b = t;
                sws[sw].update_at(t, lw);
                q.push(t, Ev::Change(sw, add));
                ready = ready.max(t);
            }
            ready
        };
    while let Some(entry) = q.q.first_entry() {
        let ((now, _), ev) = entry.remove_entry();
        if now >= end {
            break;
        }
        let client = match ev {
            Ev::Change(sw, add) => {
                if add {
                    table[sw] += 1;
                } else {
                    table[sw] = table[sw].saturating_sub(1);
                }
                sw_stats[sw].occupancy_at(now, table[sw], lw);
                continue;
            }
            Ev::Arrival => {
                if let Arrivals::Open { per_node } = p.arrivals {
                    let rate = per_node * f.hosts.len() as f64;
                    let u: f64 = rng.random_range(f64::EPSILON..1.0);
                    let gap = (-u.ln() / rate * 1e9) as u64;
                    q.push(now + gap.max(1), Ev::Arrival);
                }
                None
            }
            Ev::Client(c) => Some(c),
        };
        let put: Put = p.picker.pick(&mut rng, groups);
        let counted = now >= lw;
        let stats = if counted { &mut stats } else { &mut scratch };
        stats.offered += 1;
        let r = put.targets.len() as u128;
        let unicast_links: u64 = put
            .targets
            .iter()
            .map(|t| f.unicast_links(put.sender, *t))
            .sum();
        stats.puts += 1;
        stats.sender_bytes_unicast += payload * r;
        stats.fabric_bytes_unicast += payload * u128::from(unicast_links);
        let unicast = |stats: &mut Stats| {
            stats.sender_bytes += payload * r;
            stats.fabric_bytes += payload * u128::from(unicast_links);
        };
        let mut done = now;
        if mode == Mode::Unicast {
            unicast(stats);
        } else {
            let cache = caches.entry(put.sender).or_default();
            if let Some(i) = cache.iter().position(|s| *s == put.targets) {
                let s = cache.remove(i).unwrap_or_default();
                cache.push_front(s);
                stats.granted += 1;
                stats.reused += 1;
                stats.grant_us.push(0);
                let w = f.walk(put.sender, |sw| Some(f.ideal_ports(sw, &put.targets)));
                stats.sender_bytes += payload;
                stats.fabric_bytes += payload * u128::from(w.links);
            } else {
                let known = entries.get(&put.targets).is_some_and(|e| e.refs > 0);
                if !known && reserved >= budget as usize {
                    *stats.refusals.entry("table-full".into()).or_default() += 1;
                    unicast(stats);
                } else {
                    let ready = if known {
                        entries[&put.targets].ready_ns
                    } else {
                        reserved += 1;
                        one_change(&mut q, &mut busy, &mut sw_stats, now, true)
                    };
                    let e = entries.entry(put.targets.clone()).or_default();
                    e.refs += 1;
                    e.ready_ns = ready;
                    done = ready.max(now + JOIN_DELAY_NS);
                    let wait = (done - now) / 1000;
                    stats.granted += 1;
                    stats.grant_us.push(wait);
                    stats.waits_us.push(wait);
                    let w = f.walk(put.sender, |sw| Some(f.ideal_ports(sw, &put.targets)));
                    stats.sender_bytes += payload;
                    stats.fabric_bytes += payload * u128::from(w.links);
                    let cache = caches.entry(put.sender).or_default();
                    cache.push_front(put.targets.clone());
                    if cache.len() > JOIN_CACHE
                        && let Some(old) = cache.pop_back()
                        && let Some(e) = entries.get_mut(&old)
                    {
                        e.refs -= 1;
                        if e.refs == 0 {
                            entries.remove(&old);
                            reserved -= 1;
                            one_change(&mut q, &mut busy, &mut sw_stats, now, false);
                        }
                    }
                }
            }
        }
        if let Some(c) = client {
            q.push(done.max(now + CACHE_HIT_NS), Ev::Client(c));
        }
    }
    stats.switches = sw_stats;
    (stats, lw, end)
}
