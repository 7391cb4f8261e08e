//! Who is in a negotiating group, as far as a client knows: the rule that
//! lets a lookup or a bid round end on knowledge instead of a clock.
//!
//! Every member of a negotiating group answers every PUT_PROPOSAL (bid,
//! "already stored" or "not now") and every MANIFEST_QUERY (an offer,
//! empty when it holds no version). So a round is complete when every
//! member has answered, and its timeout only covers a member that failed.
//!
//! Members are known from the config (`members:` per group: exact) and
//! learned from answers (every node that answers a round of a group is a
//! member of it). A known member that leaves a round unanswered until its
//! timeout is set aside (it is down or left; it counts again once it
//! answers), configured or learned: a dead member costs one timeout, not
//! one per round. With no member known (a client's first round in a
//! group) a bid round ends once R answers are in and a short grace has
//! passed; a lookup's rule is in [`crate::get::ManifestLookup`].
//!
//! Setting a member aside shortens the wait; it never lowers a quorum.
//! [`Membership::all`] is every member configured or ever heard from, and
//! a lookup concludes "no such version" only from N - R + 1 answers of
//! those N (so at least one holder of every stored version answered),
//! however few it waited for. (A lossy trunk once left a client waiting
//! for one member, every later lookup ending at that member's answer, and
//! gets of objects it did not hold said "not found".) An answer that
//! comes after its round ended brings its member back as well.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv6Addr;

/// Members of each negotiating group (node ids).
#[derive(Debug, Clone, Default)]
pub struct Membership {
    configured: HashMap<Ipv6Addr, BTreeSet<u32>>,
    learned: HashMap<Ipv6Addr, BTreeSet<u32>>,
    /// Configured members that stayed silent until a round's timeout.
    silenced: HashMap<Ipv6Addr, BTreeSet<u32>>,
    /// Every member configured or ever heard from (quorums count these).
    all: HashMap<Ipv6Addr, BTreeSet<u32>>,
}

impl Membership {
    /// With the config's member lists (exact; never forgotten).
    pub fn new(configured: impl IntoIterator<Item = (Ipv6Addr, Vec<u32>)>) -> Self {
        let configured: HashMap<Ipv6Addr, BTreeSet<u32>> = configured
            .into_iter()
            .map(|(g, m)| (g, m.into_iter().collect()))
            .collect();
        Membership {
            all: configured.clone(),
            configured,
            learned: HashMap::new(),
            silenced: HashMap::new(),
        }
    }

    /// Every member of `group` configured or ever heard from, set aside
    /// or not: the N of a lookup's N - R + 1.
    pub fn all(&self, group: Ipv6Addr) -> usize {
        self.all.get(&group).map_or(0, |s| s.len())
    }

    /// `node` answered something after its round ended: it is back in
    /// every group it is a member of.
    pub fn heard(&mut self, node: u32) {
        for (g, members) in &self.all {
            if members.contains(&node) {
                if !self.configured.contains_key(g) {
                    self.learned.entry(*g).or_default().insert(node);
                }
                if let Some(s) = self.silenced.get_mut(g) {
                    s.remove(&node);
                }
            }
        }
    }

    /// Members a round in `group` waits for (empty: none known yet).
    pub fn known(&self, group: Ipv6Addr) -> Vec<u32> {
        if let Some(c) = self.configured.get(&group).filter(|c| !c.is_empty()) {
            let out: Vec<u32> = match self.silenced.get(&group) {
                Some(s) => c.difference(s).copied().collect(),
                None => c.iter().copied().collect(),
            };
            // All silent: wait for all of them again rather than for none.
            return if out.is_empty() {
                c.iter().copied().collect()
            } else {
                out
            };
        }
        self.learned
            .get(&group)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A round in `group` ended: `answered` answered it, `silent` (known
    /// members) did not before its timeout.
    pub fn settle(&mut self, group: Ipv6Addr, answered: &[u32], silent: &[u32]) {
        self.all
            .entry(group)
            .or_default()
            .extend(answered.iter().copied());
        let l = self.learned.entry(group).or_default();
        l.extend(answered.iter().copied());
        for s in silent {
            l.remove(s);
        }
        if self.configured.contains_key(&group) {
            let q = self.silenced.entry(group).or_default();
            q.extend(silent.iter().copied());
            for a in answered {
                q.remove(a);
            }
        }
    }
}

/// The answers of one round, against the members it waits for.
#[derive(Debug, Clone, Default)]
pub struct Round {
    expected: Vec<u32>,
    answered: Vec<u32>,
}

impl Round {
    pub fn new(expected: Vec<u32>) -> Self {
        Round {
            expected,
            answered: Vec::new(),
        }
    }

    /// Starts over (a new round) waiting for the same members.
    pub fn restart(&mut self) {
        self.answered.clear();
    }

    pub fn set_expected(&mut self, expected: Vec<u32>) {
        self.expected = expected;
    }

    /// Records an answer; false if `node` had already answered.
    pub fn answer(&mut self, node: u32) -> bool {
        if self.answered.contains(&node) {
            return false;
        }
        self.answered.push(node);
        true
    }

    /// Whether every expected member answered (false with none expected).
    pub fn complete(&self) -> bool {
        !self.expected.is_empty() && self.expected.iter().all(|m| self.answered.contains(m))
    }

    /// How many members the round waits for.
    pub fn expected_len(&self) -> usize {
        self.expected.len()
    }

    /// Whether any member is known.
    pub fn informed(&self) -> bool {
        !self.expected.is_empty()
    }

    pub fn answered(&self) -> &[u32] {
        &self.answered
    }

    /// Expected members that have not answered.
    pub fn silent(&self) -> Vec<u32> {
        self.expected
            .iter()
            .copied()
            .filter(|m| !self.answered.contains(m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_then_forgotten_when_silent() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let mut m = Membership::default();
        assert!(m.known(g).is_empty());
        m.settle(g, &[3, 1, 2], &[]);
        assert_eq!(m.known(g), vec![1, 2, 3]);
        m.settle(g, &[1, 2], &[3]);
        assert_eq!(m.known(g), vec![1, 2]);
        let mut r = Round::new(m.known(g));
        assert!(!r.complete());
        r.answer(2);
        assert!(!r.complete());
        assert!(!r.answer(2));
        r.answer(1);
        assert!(r.complete());
        let c = Membership::new([(g, vec![7, 8])]);
        assert_eq!(c.known(g), vec![7, 8], "the config wins");
    }

    #[test]
    fn a_silent_configured_member_is_set_aside_until_it_answers() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let mut m = Membership::new([(g, vec![1, 2, 3])]);
        m.settle(g, &[1, 2], &[3]);
        assert_eq!(m.known(g), vec![1, 2], "a dead member costs one timeout");
        m.settle(g, &[1, 2, 3], &[]);
        assert_eq!(m.known(g), vec![1, 2, 3], "back once it answers");
        m.settle(g, &[], &[1, 2, 3]);
        assert_eq!(m.known(g), vec![1, 2, 3], "never an empty wait list");
    }

    #[test]
    fn setting_members_aside_never_shrinks_the_quorum_and_a_late_answer_brings_one_back() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let mut m = Membership::default();
        m.settle(g, &[1, 2, 3, 4, 5, 6, 7, 8], &[]);
        // A lost query behind a trunk: only 2 answered in time.
        m.settle(g, &[2], &[1, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.known(g), vec![2], "the wait is short");
        assert_eq!(m.all(g), 8, "the quorum is not");
        m.heard(5);
        assert_eq!(m.known(g), vec![2, 5]);
        let mut c = Membership::new([(g, vec![1, 2, 3])]);
        assert_eq!(c.all(g), 3);
        c.settle(g, &[1], &[2, 3]);
        c.heard(3);
        assert_eq!(c.known(g), vec![1, 3]);
        c.heard(9);
        assert_eq!(c.all(g), 3, "only members come back");
    }
}
