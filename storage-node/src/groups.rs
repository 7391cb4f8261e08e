//! Rendezvous groups a client holds, one per (parent, target set), without
//! I/O: the first put to a target set asks the controller; later chunks to
//! the same set (of this put or the next) reuse the granted group while its
//! lease has time left. Concurrent transfers on one group are told apart
//! by their Replicast transaction ids.
//!
//! A refusal for a full table (a switch has no room and nothing it holds
//! can be evicted) makes the waiting puts fall back to the configured
//! transport; any other refusal fails them with the controller's reason.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::{GrantOutcome, Member, RefuseReason, RendezvousRequest};

/// A target set under one parent group (targets sorted).
pub type SetKey = (Ipv6Addr, Vec<Ipv6Addr>);

/// What a waiting put gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAnswer {
    /// Send to this rendezvous group.
    Group(Ipv6Addr),
    /// No room for a group: send by the fallback transport; the text
    /// names the reason and the switch.
    Fallback(String),
    /// The controller refused or did not answer.
    Failed(String),
}

#[derive(Debug)]
struct Pending {
    request: RendezvousRequest,
    waiters: Vec<u64>,
    next_try: Instant,
    tries: u32,
    /// A lease this request replaces (released once granted).
    replaces: Option<u64>,
}

#[derive(Debug, Clone)]
struct Held {
    group: Ipv6Addr,
    lease_id: u64,
    expires: Instant,
    /// Until when every target is a known member of the group (a put on
    /// it ended with all their PUT_ACKs; see `warm_for`).
    warm_until: Option<Instant>,
}

/// Settings of the cache.
#[derive(Debug, Clone)]
pub struct GroupParams {
    pub vlan: u16,
    pub lifetime: Duration,
    /// Retransmit an unanswered request after this long.
    pub retry: Duration,
    pub max_tries: u32,
}

/// What the owner must send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerOut {
    Request(RendezvousRequest),
    Release(u64),
}

/// The client's rendezvous groups by target set.
#[derive(Debug)]
pub struct GroupCache {
    p: GroupParams,
    held: HashMap<SetKey, Held>,
    pending: HashMap<SetKey, Pending>,
    /// request id -> key
    by_request: HashMap<u64, SetKey>,
    out: Vec<ControllerOut>,
    answers: Vec<(u64, GroupAnswer)>,
    /// Requests sent (first tries) and grants served from the cache.
    pub requests: u64,
    pub reused: u64,
}

impl GroupCache {
    pub fn new(p: GroupParams) -> Self {
        GroupCache {
            p,
            held: HashMap::new(),
            pending: HashMap::new(),
            by_request: HashMap::new(),
            out: Vec::new(),
            answers: Vec::new(),
            requests: 0,
            reused: 0,
        }
    }

    /// Every target of `group` is a member of it until `until`.
    /// (A group this cache does not hold is left alone.)
    pub fn mark_warm(&mut self, group: Ipv6Addr, until: Instant) {
        for h in self.held.values_mut().filter(|h| h.group == group) {
            h.warm_until = h.warm_until.max(Some(until));
        }
    }

    /// Whether every target of `group`, a group this cache holds, is a
    /// known member of it now. A group no longer held may have been given
    /// to another target set since.
    pub fn is_warm(&self, group: Ipv6Addr, now: Instant) -> bool {
        self.held
            .values()
            .any(|h| h.group == group && h.warm_until.is_some_and(|t| t > now))
    }

    /// A lease with less than this left is not used for a new transfer.
    fn margin(&self) -> Duration {
        (self.p.lifetime / 4).max(Duration::from_millis(500))
    }

    /// Put `txid` needs a group of `parent` reaching `targets`. The
    /// answer comes from [`Self::poll_answer`] (at once if held).
    pub fn need(&mut self, txid: u64, parent: Ipv6Addr, mut targets: Vec<Ipv6Addr>, now: Instant) {
        targets.sort_unstable();
        targets.dedup();
        let key = (parent, targets);
        if let Some(h) = self.held.get(&key)
            && h.expires > now + self.margin()
        {
            self.reused += 1;
            self.answers.push((txid, GroupAnswer::Group(h.group)));
            return;
        }
        if let Some(p) = self.pending.get_mut(&key) {
            p.waiters.push(txid);
            return;
        }
        let request = RendezvousRequest {
            request_id: rand::random(),
            vlan: self.p.vlan,
            parent,
            lifetime_ms: self.p.lifetime.as_millis().min(u128::from(u32::MAX)) as u32,
            targets: key
                .1
                .iter()
                .map(|a| match a.to_ipv4_mapped() {
                    Some(v4) => Member::Ipv4(v4),
                    None => Member::Ipv6(*a),
                })
                .collect(),
        };
        self.requests += 1;
        self.out.push(ControllerOut::Request(request.clone()));
        self.by_request.insert(request.request_id, key.clone());
        let replaces = self.held.remove(&key).map(|h| h.lease_id);
        self.pending.insert(
            key,
            Pending {
                request,
                waiters: vec![txid],
                next_try: now + self.p.retry,
                tries: 1,
                replaces,
            },
        );
    }

    /// The controller's answer to request `request_id`.
    pub fn on_grant(&mut self, request_id: u64, outcome: GrantOutcome, now: Instant) {
        let Some(key) = self.by_request.remove(&request_id) else {
            return;
        };
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        if let Some(old) = p.replaces {
            self.out.push(ControllerOut::Release(old));
        }
        let answer = match outcome {
            GrantOutcome::Granted {
                group,
                lease_id,
                expires_at_ms,
                ..
            } => {
                // The controller's clock says when; ours counts from now.
                let left_ms = expires_at_ms.saturating_sub(subcast_proto::now_us() / 1000);
                let left = Duration::from_millis(left_ms).min(self.p.lifetime);
                self.held.insert(
                    key,
                    Held {
                        group,
                        lease_id,
                        expires: now + left,
                        warm_until: None,
                    },
                );
                GroupAnswer::Group(group)
            }
            GrantOutcome::Refused {
                reason: RefuseReason::TableFull,
                detail,
            } => GroupAnswer::Fallback(format!("table-full: {detail}")),
            GrantOutcome::Refused { reason, detail } => {
                GroupAnswer::Failed(format!("{}: {detail}", reason.name()))
            }
        };
        for w in p.waiters {
            self.answers.push((w, answer.clone()));
        }
    }

    /// Retransmits due requests, fails those out of tries, forgets
    /// expired leases.
    pub fn handle_timeout(&mut self, now: Instant, controller: &str) {
        self.held.retain(|_, h| h.expires > now);
        let due: Vec<SetKey> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_try <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if p.tries >= self.p.max_tries {
                let p = self.pending.remove(&key).expect("present");
                self.by_request.remove(&p.request.request_id);
                for w in p.waiters {
                    self.answers.push((
                        w,
                        GroupAnswer::Failed(format!("controller {controller} did not answer")),
                    ));
                }
                continue;
            }
            p.tries += 1;
            p.next_try = now + self.p.retry;
            self.out.push(ControllerOut::Request(p.request.clone()));
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.next_try).min()
    }

    pub fn poll_out(&mut self) -> Option<ControllerOut> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }

    pub fn poll_answer(&mut self) -> Option<(u64, GroupAnswer)> {
        (!self.answers.is_empty()).then(|| self.answers.remove(0))
    }

    /// Gives every held lease back.
    pub fn release_all(&mut self) {
        for (_, h) in self.held.drain() {
            self.out.push(ControllerOut::Release(h.lease_id));
        }
    }

    /// Groups held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)
    }
    const PARENT: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c, 0);

    fn cache() -> GroupCache {
        GroupCache::new(GroupParams {
            vlan: 0,
            lifetime: Duration::from_secs(5),
            retry: Duration::from_millis(300),
            max_tries: 3,
        })
    }

    fn granted(group: u16, lease_id: u64) -> GrantOutcome {
        GrantOutcome::Granted {
            group: Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c00, group),
            lease_id,
            expires_at_ms: subcast_proto::now_us() / 1000 + 5000,
            reused: false,
        }
    }

    fn request_id(c: &mut GroupCache) -> u64 {
        match c.poll_out() {
            Some(ControllerOut::Request(r)) => r.request_id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_group_is_warm_only_while_held_and_until_its_time() {
        let mut c = cache();
        let t0 = Instant::now();
        let g = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c00, 7);
        // Not held yet: marking it does not make it warm.
        c.mark_warm(g, t0 + Duration::from_secs(1));
        assert!(!c.is_warm(g, t0));
        c.need(1, PARENT, vec![a(1), a(2), a(3)], t0);
        let r = request_id(&mut c);
        c.on_grant(r, granted(7, 70), t0);
        assert!(!c.is_warm(g, t0), "held, but no put has ended on it");
        c.mark_warm(g, t0 + Duration::from_secs(1));
        assert!(c.is_warm(g, t0 + Duration::from_millis(999)));
        assert!(
            !c.is_warm(g, t0 + Duration::from_secs(1)),
            "until, not after"
        );
        // An earlier end does not shorten it.
        c.mark_warm(g, t0 + Duration::from_millis(500));
        assert!(c.is_warm(g, t0 + Duration::from_millis(900)));
        // Released: never warm again, whatever was marked.
        c.release_all();
        assert!(!c.is_warm(g, t0 + Duration::from_millis(900)));
    }

    #[test]
    fn one_group_per_target_set_kept_across_chunks() {
        let mut c = cache();
        let t0 = Instant::now();
        // Two chunks to the same set (in any order) wait on one request.
        c.need(1, PARENT, vec![a(3), a(1), a(2)], t0);
        c.need(2, PARENT, vec![a(1), a(2), a(3)], t0);
        let r = request_id(&mut c);
        assert_eq!(c.poll_out(), None, "one request for the set");
        c.on_grant(r, granted(7, 70), t0);
        let g = GroupAnswer::Group(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c00, 7));
        assert_eq!(c.poll_answer(), Some((1, g.clone())));
        assert_eq!(c.poll_answer(), Some((2, g.clone())));
        // A later chunk to the same set: no request at all.
        c.need(
            3,
            PARENT,
            vec![a(2), a(3), a(1)],
            t0 + Duration::from_secs(1),
        );
        assert_eq!(c.poll_out(), None);
        assert_eq!(c.poll_answer(), Some((3, g)));
        // Another set: its own request.
        c.need(4, PARENT, vec![a(1), a(2), a(4)], t0);
        assert!(matches!(c.poll_out(), Some(ControllerOut::Request(_))));
        assert_eq!((c.requests, c.reused), (2, 1));
        // Near the end of the lease: a new request; the old lease is
        // released once the new one is granted.
        c.need(
            5,
            PARENT,
            vec![a(1), a(2), a(3)],
            t0 + Duration::from_millis(4800),
        );
        let r = request_id(&mut c);
        c.on_grant(r, granted(8, 80), t0 + Duration::from_millis(4800));
        assert_eq!(c.poll_out(), Some(ControllerOut::Release(70)));
        c.release_all();
        assert_eq!(c.poll_out(), Some(ControllerOut::Release(80)));
    }

    #[test]
    fn table_full_falls_back_other_refusals_fail() {
        let mut c = cache();
        let t0 = Instant::now();
        c.need(1, PARENT, vec![a(1), a(2), a(3)], t0);
        c.need(2, PARENT, vec![a(1), a(2), a(3)], t0);
        let r = request_id(&mut c);
        c.on_grant(
            r,
            GrantOutcome::Refused {
                reason: RefuseReason::TableFull,
                detail: "switch B holds 512 of 512 groups".into(),
            },
            t0,
        );
        let fb = GroupAnswer::Fallback("table-full: switch B holds 512 of 512 groups".into());
        assert_eq!(c.poll_answer(), Some((1, fb.clone())));
        assert_eq!(c.poll_answer(), Some((2, fb)));
        c.need(3, PARENT, vec![a(1), a(2), a(4)], t0);
        let r = request_id(&mut c);
        c.on_grant(
            r,
            GrantOutcome::Refused {
                reason: RefuseReason::QuotaExceeded,
                detail: "64 leases".into(),
            },
            t0,
        );
        assert!(
            matches!(c.poll_answer(), Some((3, GroupAnswer::Failed(m))) if m.contains("quota-exceeded"))
        );
        // Unanswered: retried, then failed.
        c.need(4, PARENT, vec![a(5)], t0);
        request_id(&mut c);
        for _ in 0..2 {
            let now = c.poll_timeout().unwrap();
            c.handle_timeout(now, "[fd00::1]:7411");
            request_id(&mut c);
        }
        c.handle_timeout(c.poll_timeout().unwrap(), "[fd00::1]:7411");
        assert!(
            matches!(c.poll_answer(), Some((4, GroupAnswer::Failed(m))) if m.contains("did not answer"))
        );
    }
}
