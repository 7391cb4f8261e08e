//! Restart from the store.
//!
//! What the store guarantees: a group row (with the lease that created
//! it) is durable before that lease is granted; a hit's lease is covered
//! by its group's `hold_until_ms`, which is made durable before the grant
//! when it has to grow (in steps of `hold_ms`, so rarely); every address
//! below a VLAN's pool mark may have been pushed, and the mark is made
//! durable before an address above it is pushed. Hits write no lease row;
//! deletions are not waited for.
//!
//! After a restart: groups still held (a lease not ended, or
//! `hold_until_ms` ahead) are pushed again to every agent and kept only
//! if every agent ACKs; others are cleared. Every other address below the
//! mark is cleared on every agent (a group pushed just before a crash,
//! before its row was written) before new groups are made. So nothing
//! leaks, and no group outlives its leases and warm period on any switch.

use super::groups::{GState, Group, GroupKey, PState, Presence};
use super::{Engine, GroupRow, StoreOp};
use crate::leases::{Held, Lease, LeaseState};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::Instant;
use subcast_proto::{Member, Members};

/// Ids of sweep-only groups (addresses found below the mark).
pub const GHOST_BASE: u64 = 1 << 62;
/// The pool mark grows by this many addresses at a time.
pub const MARK_STEP: u64 = 64;

/// What the store held at start.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub groups: Vec<GroupRow>,
    pub leases: Vec<Lease>,
    /// (VLAN, pool mark).
    pub marks: Vec<(u16, u64)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Mark {
    pub requested: u64,
    pub seq: u64,
}

impl Engine {
    /// Restores what `loaded` holds; call once, before any event.
    pub fn recover(&mut self, now: Instant, loaded: Loaded) {
        let now_ms = self.clock.unix_ms(now);
        let marks: HashMap<u16, u64> = loaded.marks.iter().copied().collect();
        for (vlan, pool) in &mut self.pools {
            pool.set_cursor(u128::from(marks.get(vlan).copied().unwrap_or(0)));
        }
        let mut rows: BTreeMap<Ipv6Addr, GroupRow> =
            loaded.groups.into_iter().map(|r| (r.group, r)).collect();
        let mut by_group: HashMap<Ipv6Addr, Vec<Lease>> = HashMap::new();
        for l in loaded.leases {
            // Rows of an older schema: one lease per group.
            rows.entry(l.group).or_insert_with(|| GroupRow {
                group: l.group,
                vlan: l.vlan,
                parent: l.parent,
                targets: l.targets.clone(),
                switches: l.switches.clone(),
                hold_until_ms: l.expires_ms,
                pinned: false,
                created_ms: l.created_ms,
            });
            by_group.entry(l.group).or_default().push(l);
        }
        let (mut kept, mut cleared) = (0, 0);
        for (addr, row) in rows {
            let leases: Vec<Lease> = by_group
                .remove(&addr)
                .unwrap_or_default()
                .into_iter()
                .filter(|l| l.expires_ms > now_ms + 10)
                .collect();
            let key = self.key_of(&row);
            let reserved = self
                .pools
                .get_mut(&row.vlan)
                .is_some_and(|p| p.reserve(addr));
            let live = row.hold_until_ms > now_ms || !leases.is_empty() || row.pinned;
            let keep =
                live && reserved && key.as_ref().is_some_and(|k| self.groups.find(k).is_none());
            if !reserved {
                tracing::warn!(group = %addr, "stored group is outside this controller's pool slice; clearing it");
            }
            let gid = self.groups.next_id();
            let mut g = self.blank_group(
                now,
                gid,
                &row,
                key.unwrap_or(GroupKey {
                    vlan: row.vlan,
                    parent: row.parent,
                    targets: Vec::new(),
                }),
            );
            if keep {
                kept += 1;
                g.state = GState::Installing;
                g.pinned = row.pinned;
                g.hold = (0, row.hold_until_ms);
                let hold_end = self.clock.instant_of_ms(row.hold_until_ms);
                g.max_lease_end = hold_end.checked_sub(self.cfg.hold).unwrap_or(now).max(now);
                for p in &mut g.presence {
                    p.st = PState::Setting;
                    p.counted = true;
                    self.budgets.count(p.switch, true);
                    if row.pinned {
                        self.budgets.pin(p.switch, true);
                    }
                }
                self.groups.insert(g);
                for mut l in leases {
                    l.state = LeaseState::Live;
                    let end = self.clock.instant_of_ms(l.expires_ms);
                    self.timers.at(end, super::timers::Timer::LeaseEnd(l.id));
                    if let Some(gr) = self.groups.get_mut(gid) {
                        gr.refs += 1;
                        gr.max_lease_end = gr.max_lease_end.max(end);
                        if gr.first_lease == 0 {
                            gr.first_lease = l.id;
                        }
                    }
                    self.leases.insert(Held { lease: l, gid, end });
                }
                self.send_install(now, gid);
            } else {
                cleared += 1;
                g.state = GState::Tearing;
                for p in &mut g.presence {
                    p.st = PState::Present;
                    p.counted = true;
                    self.budgets.count(p.switch, true);
                }
                self.groups.insert(g);
                self.groups.forget_key(gid);
                for l in by_group.remove(&addr).unwrap_or_default() {
                    self.write(StoreOp::DeleteLease { id: l.id });
                }
                self.teardown_step(now, gid);
            }
        }
        // Anything else below the mark may have been pushed unrecorded.
        let mut ghosts = 0u64;
        let vlans: Vec<u16> = self.pools.keys().copied().collect();
        for vlan in vlans {
            let upto = marks.get(&vlan).copied().unwrap_or(0);
            let sws: Vec<u32> = self.cfg.switches_in_vlan(vlan).map(|s| s.id).collect();
            for i in 0..upto {
                let Some(pool) = self.pools.get_mut(&vlan) else {
                    break;
                };
                if u128::from(i) >= pool.size() {
                    break;
                }
                let addr = pool.nth(u128::from(i));
                if !pool.reserve(addr) {
                    continue;
                }
                ghosts += 1;
                let gid = GHOST_BASE + ghosts;
                let row = GroupRow {
                    group: addr,
                    vlan,
                    parent: Ipv6Addr::UNSPECIFIED,
                    targets: Vec::new(),
                    switches: sws.clone(),
                    hold_until_ms: 0,
                    pinned: false,
                    created_ms: 0,
                };
                let mut g = self.blank_group(
                    now,
                    gid,
                    &row,
                    GroupKey {
                        vlan,
                        parent: Ipv6Addr::UNSPECIFIED,
                        targets: vec![u16::MAX],
                    },
                );
                g.state = GState::Tearing;
                g.ghost = true;
                for p in &mut g.presence {
                    p.st = PState::Present;
                }
                self.groups.insert(g);
                self.groups.forget_key(gid);
                *self.sweeping.entry(vlan).or_default() += 1;
                self.teardown_step(now, gid);
            }
        }
        for (vlan, pool) in &self.pools {
            let from = (pool.cursor() as u64).max(marks.get(vlan).copied().unwrap_or(0));
            let requested = from + MARK_STEP;
            self.store_seq += 1;
            let seq = self.store_seq;
            self.store_q.push_back(super::StoreWrite {
                seq,
                op: StoreOp::PoolMark {
                    vlan: *vlan,
                    upto: requested,
                },
            });
            self.marks.insert(*vlan, Mark { requested, seq });
        }
        tracing::info!(
            kept,
            cleared,
            swept = ghosts,
            "state restored from the database"
        );
        self.settle(now);
    }

    /// The store write a fresh address of index `i` must wait for (None:
    /// already covered by a durable mark). Extends the mark ahead of need.
    pub(super) fn mark_wait(&mut self, vlan: u16, i: u64) -> Option<u64> {
        let m = self.marks.get(&vlan).copied().unwrap_or_default();
        let mut m2 = m;
        if i + MARK_STEP / 2 >= m.requested {
            m2.requested = i + MARK_STEP;
            m2.seq = self.write(StoreOp::PoolMark {
                vlan,
                upto: m2.requested,
            });
            self.marks.insert(vlan, m2);
        }
        if i < m.requested && m.seq <= self.durable {
            None
        } else if i < m.requested {
            Some(m.seq)
        } else {
            Some(m2.seq)
        }
    }

    fn key_of(&self, row: &GroupRow) -> Option<GroupKey> {
        let g = self.cfg.group_by_parent(row.parent)?;
        if g.vlan != row.vlan {
            return None;
        }
        let mut targets = Vec::new();
        for t in &row.targets {
            targets.push(g.members.iter().position(|m| m.mac == t.mac)? as u16);
        }
        targets.sort_unstable();
        Some(GroupKey {
            vlan: row.vlan,
            parent: row.parent,
            targets,
        })
    }

    fn blank_group(&self, now: Instant, gid: u64, row: &GroupRow, key: GroupKey) -> Group {
        // Switches of the VLAN now (the config may have changed).
        let sws: Vec<u32> = self.cfg.switches_in_vlan(row.vlan).map(|s| s.id).collect();
        Group {
            id: gid,
            key,
            addr: row.group,
            vlan: row.vlan,
            parent: row.parent,
            targets: row.targets.clone(),
            members: Members::List(row.targets.iter().map(|t| Member::Mac(t.mac)).collect()),
            state: GState::Tearing,
            refs: 0,
            waiters: Vec::new(),
            pinned: false,
            lru: None,
            last_used: now,
            max_lease_end: now,
            held_until: now,
            hard_end: now + self.cfg.lease_max + self.cfg.warm + self.cfg.hold + self.slack(),
            hold: (0, 0),
            warm_gen: 0,
            presence: sws.into_iter().map(Presence::new).collect(),
            round: None,
            tainted: false,
            first_lease: 0,
            created_ms: row.created_ms,
            needs_seq: 0,
            clear_waiters: Vec::new(),
            clear_outcomes: Vec::new(),
            hits: 0,
            ghost: false,
            generation: 0,
        }
    }
}

impl Engine {
    /// True once nothing restored at start is still being pushed or
    /// cleared (groups may still linger on silent agents).
    pub fn recovered(&self) -> bool {
        self.sweeping.values().all(|n| *n == 0)
            && !self.groups.by_id.values().any(|g| {
                g.state == GState::Installing
                    || (g.state == GState::Tearing && g.presence.iter().any(|p| p.item.is_some()))
            })
    }
}
