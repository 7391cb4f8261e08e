//! Pushing one instruction (SET_SUBSET or CLEAR) to every agent in scope.
//!
//! [`Fanout`] is the state machine of one transaction, without I/O: it is
//! told the time, ACKs and NAKs, and says which agents to (re)send to and
//! when to wake up. Retransmissions keep the transaction id (agents treat
//! a repeated txid as the same instruction) but are sealed afresh, with a
//! new sequence number, so the agents' replay window accepts them.
//! [`Pusher`] drives it over the controller's UDP socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use subcast_proto::{Key, Message, NakReason, Origin, now_us, seal};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Retransmission policy: first resend after `rto`, doubling (capped at
/// one second), `attempts` sends in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub rto: Duration,
    pub attempts: u32,
}

const MAX_RTO: Duration = Duration::from_secs(1);

impl Policy {
    fn wait_after(&self, sends: u32) -> Duration {
        let shift = sends.saturating_sub(1).min(16);
        (self.rto * (1u32 << shift)).min(MAX_RTO.max(self.rto))
    }
}

/// Where one agent stands in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    Waiting {
        sends: u32,
        next_at: Instant,
    },
    Acked {
        port_count: u16,
        sends: u32,
    },
    Naked {
        reason: NakReason,
        detail: String,
        sends: u32,
    },
    Silent {
        sends: u32,
    },
}

impl PeerState {
    pub fn sends(&self) -> u32 {
        match self {
            PeerState::Waiting { sends, .. }
            | PeerState::Acked { sends, .. }
            | PeerState::Naked { sends, .. }
            | PeerState::Silent { sends } => *sends,
        }
    }
    /// Short outcome name for the audit log.
    pub fn outcome_name(&self) -> &'static str {
        match self {
            PeerState::Waiting { .. } => "abandoned",
            PeerState::Acked { .. } => "acked",
            PeerState::Naked { .. } => "naked",
            PeerState::Silent { .. } => "silent",
        }
    }
}

/// Why a transaction failed, about the first agent that failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Nak {
        switch_id: u32,
        reason: NakReason,
        detail: String,
    },
    Silent {
        switch_id: u32,
        sends: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AllAcked,
    Failed(Failure),
}

/// One transaction to a set of agents.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub txid: u64,
    policy: Policy,
    peers: Vec<(u32, PeerState)>,
    first_failure: Option<Failure>,
}

impl Fanout {
    /// Every agent is due for its first send at `now`.
    pub fn new(
        txid: u64,
        switch_ids: impl IntoIterator<Item = u32>,
        policy: Policy,
        now: Instant,
    ) -> Self {
        let mut peers: Vec<(u32, PeerState)> = Vec::new();
        for id in switch_ids {
            if !peers.iter().any(|(p, _)| *p == id) {
                peers.push((
                    id,
                    PeerState::Waiting {
                        sends: 0,
                        next_at: now,
                    },
                ));
            }
        }
        Fanout {
            txid,
            policy,
            peers,
            first_failure: None,
        }
    }

    /// The agents to send to now. An agent that used all its attempts and
    /// whose last wait is over becomes `Silent`.
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        for (id, st) in &mut self.peers {
            if let PeerState::Waiting { sends, next_at } = st
                && *next_at <= now
            {
                if *sends >= self.policy.attempts {
                    let sends = *sends;
                    *st = PeerState::Silent { sends };
                    if self.first_failure.is_none() {
                        self.first_failure = Some(Failure::Silent {
                            switch_id: *id,
                            sends,
                        });
                    }
                } else {
                    *sends += 1;
                    *next_at = now + self.policy.wait_after(*sends);
                    out.push(*id);
                }
            }
        }
        out
    }

    /// When [`Fanout::poll_transmit`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(|(_, s)| match s {
                PeerState::Waiting { next_at, .. } => Some(*next_at),
                _ => None,
            })
            .min()
    }

    /// Records an ACK; false if the agent is not part of this transaction
    /// or already answered.
    pub fn on_ack(&mut self, switch_id: u32, port_count: u16) -> bool {
        match self.peers.iter_mut().find(|(id, _)| *id == switch_id) {
            Some((_, st @ PeerState::Waiting { .. })) => {
                let sends = st.sends();
                *st = PeerState::Acked { port_count, sends };
                true
            }
            _ => false,
        }
    }

    /// Records a NAK (see [`Fanout::on_ack`]).
    pub fn on_nak(&mut self, switch_id: u32, reason: NakReason, detail: String) -> bool {
        match self.peers.iter_mut().find(|(id, _)| *id == switch_id) {
            Some((_, st @ PeerState::Waiting { .. })) => {
                let sends = st.sends();
                if self.first_failure.is_none() {
                    self.first_failure = Some(Failure::Nak {
                        switch_id,
                        reason,
                        detail: detail.clone(),
                    });
                }
                *st = PeerState::Naked {
                    reason,
                    detail,
                    sends,
                };
                true
            }
            _ => false,
        }
    }

    /// Decided as soon as one agent failed, or when all ACKed.
    pub fn outcome(&self) -> Option<Outcome> {
        if let Some(f) = &self.first_failure {
            return Some(Outcome::Failed(f.clone()));
        }
        self.peers
            .iter()
            .all(|(_, s)| matches!(s, PeerState::Acked { .. }))
            .then_some(Outcome::AllAcked)
    }

    /// True when no agent is still waited for.
    pub fn settled(&self) -> bool {
        self.next_deadline().is_none()
    }

    pub fn peers(&self) -> &[(u32, PeerState)] {
        &self.peers
    }

    /// Agents that may hold the instruction: all but those that NAKed
    /// (a NAK means nothing was installed). These get a CLEAR on failure.
    pub fn maybe_applied(&self) -> Vec<u32> {
        self.peers
            .iter()
            .filter(|(_, s)| !matches!(s, PeerState::Naked { .. }))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// How long [`Pusher::push`] keeps going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Stop at the first failure (SET_SUBSET: refuse fast).
    Decided,
    /// Wait for every agent's answer or silence (CLEAR).
    Settled,
}

/// An agent as the pusher needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRef {
    pub switch_id: u32,
    pub addr: SocketAddr,
    pub key_id: u32,
}

/// An agent's answer, routed by txid from the receive loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack {
        switch_id: u32,
        port_count: u16,
    },
    Nak {
        switch_id: u32,
        reason: NakReason,
        detail: String,
    },
}

/// Makes unique, increasing 64-bit ids that survive restarts: the low 56
/// bits start at the clock in microseconds, the high 8 bits are the
/// controller id (controllers side by side never collide).
#[derive(Debug)]
pub struct IdGen {
    prefix: u64,
    last: AtomicU64,
}

impl IdGen {
    pub fn new(controller_id: u32) -> Self {
        IdGen {
            prefix: u64::from(controller_id & 0xff) << 56,
            last: AtomicU64::new(0),
        }
    }
    pub fn next(&self) -> u64 {
        const LOW: u64 = (1 << 56) - 1;
        let now = now_us() & LOW;
        let prev = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(now.max(l + 1) & LOW)
            })
            .unwrap_or(0);
        self.prefix | (now.max(prev + 1) & LOW)
    }
}

/// Sends instructions to agents and collects their answers.
#[derive(Debug)]
pub struct Pusher {
    socket: std::sync::Arc<UdpSocket>,
    controller_id: u32,
    keys: std::collections::BTreeMap<u32, Key>,
    seq: AtomicU64,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>,
    pub policy: Policy,
}

struct PendingGuard<'a>(&'a Pusher, u64);
impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.pending.lock() {
            p.remove(&self.1);
        }
    }
}

impl Pusher {
    pub fn new(
        socket: std::sync::Arc<UdpSocket>,
        controller_id: u32,
        keys: std::collections::BTreeMap<u32, Key>,
        policy: Policy,
    ) -> Self {
        Pusher {
            socket,
            controller_id,
            keys,
            seq: AtomicU64::new(now_us().max(1)),
            pending: Mutex::new(HashMap::new()),
            policy,
        }
    }

    pub fn socket(&self) -> &std::sync::Arc<UdpSocket> {
        &self.socket
    }

    /// Seals `msg` with key `key_id` and a fresh sequence number.
    pub fn seal(&self, key_id: u32, msg: &Message) -> Option<Vec<u8>> {
        let key = self.keys.get(&key_id)?;
        let origin = Origin {
            key_id,
            sender_id: self.controller_id,
            sequence: self.seq.fetch_add(1, Ordering::Relaxed),
            timestamp_us: now_us(),
        };
        Some(seal(key, origin, msg))
    }

    /// Hands an agent's answer to the transaction waiting for it; false if
    /// none is (late or duplicate answer).
    pub fn deliver(&self, txid: u64, reply: Reply) -> bool {
        let tx = self.pending.lock().ok().and_then(|p| p.get(&txid).cloned());
        tx.is_some_and(|tx| tx.send(reply).is_ok())
    }

    /// Pushes `msg` (whose txid is `txid`) to `agents` and returns the
    /// finished state machine.
    pub async fn push(
        &self,
        txid: u64,
        msg: &Message,
        agents: &[AgentRef],
        until: Until,
    ) -> Fanout {
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(txid, tx);
        }
        let _guard = PendingGuard(self, txid);
        let mut f = Fanout::new(
            txid,
            agents.iter().map(|a| a.switch_id),
            self.policy,
            Instant::now(),
        );
        loop {
            for id in f.poll_transmit(Instant::now()) {
                let Some(a) = agents.iter().find(|a| a.switch_id == id) else {
                    continue;
                };
                match self.seal(a.key_id, msg) {
                    Some(bytes) => {
                        if let Err(e) = self.socket.send_to(&bytes, a.addr).await {
                            tracing::debug!(switch = id, addr = %a.addr, error = %e, "send to agent failed");
                        }
                    }
                    None => {
                        tracing::error!(switch = id, key_id = a.key_id, "no key to seal for agent")
                    }
                }
            }
            let done = match until {
                Until::Decided => f.outcome().is_some(),
                Until::Settled => f.settled(),
            };
            if done {
                return f;
            }
            let Some(deadline) = f.next_deadline() else {
                return f;
            };
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Reply::Ack { switch_id, port_count }) => { f.on_ack(switch_id, port_count); }
                    Some(Reply::Nak { switch_id, reason, detail }) => { f.on_nak(switch_id, reason, detail); }
                    None => return f,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        rto: Duration::from_millis(10),
        attempts: 4,
    };

    #[test]
    fn all_ack_first_time() {
        let t0 = Instant::now();
        let mut f = Fanout::new(7, [1, 2, 3], P, t0);
        assert_eq!(f.poll_transmit(t0), vec![1, 2, 3]);
        assert_eq!(f.poll_transmit(t0), Vec::<u32>::new(), "nothing due yet");
        assert!(f.on_ack(1, 2));
        assert!(!f.on_ack(1, 2), "duplicate ACK ignored");
        assert!(!f.on_ack(9, 2), "stranger ignored");
        f.on_ack(2, 1);
        assert_eq!(f.outcome(), None);
        f.on_ack(3, 1);
        assert_eq!(f.outcome(), Some(Outcome::AllAcked));
        assert!(f.settled());
    }

    #[test]
    fn lost_datagrams_are_retransmitted_with_backoff() {
        let t0 = Instant::now();
        let mut f = Fanout::new(7, [1, 2], P, t0);
        f.poll_transmit(t0);
        f.on_ack(1, 1);
        assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(
            f.poll_transmit(t0 + Duration::from_millis(9)),
            Vec::<u32>::new()
        );
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(f.poll_transmit(t1), vec![2]);
        assert_eq!(
            f.next_deadline(),
            Some(t1 + Duration::from_millis(20)),
            "doubled"
        );
        f.on_ack(2, 1);
        assert_eq!(f.outcome(), Some(Outcome::AllAcked));
        assert_eq!(
            f.peers()[1].1,
            PeerState::Acked {
                port_count: 1,
                sends: 2
            }
        );
    }

    #[test]
    fn silent_agent_fails_after_all_attempts() {
        let mut now = Instant::now();
        let mut f = Fanout::new(7, [1, 2], P, now);
        let mut sends_to_2 = 0;
        while f.outcome().is_none() {
            let out = f.poll_transmit(now);
            sends_to_2 += out.iter().filter(|i| **i == 2).count();
            if out.contains(&1) {
                f.on_ack(1, 1);
            }
            now = f.next_deadline().unwrap_or(now);
        }
        assert_eq!(sends_to_2, 4);
        assert_eq!(
            f.outcome(),
            Some(Outcome::Failed(Failure::Silent {
                switch_id: 2,
                sends: 4
            }))
        );
        assert_eq!(
            f.maybe_applied(),
            vec![1, 2],
            "silent agent may have applied it"
        );
    }

    #[test]
    fn nak_decides_at_once_and_is_not_cleared() {
        let t0 = Instant::now();
        let mut f = Fanout::new(7, [1, 2, 3], P, t0);
        f.poll_transmit(t0);
        f.on_ack(1, 1);
        f.on_nak(
            2,
            NakReason::NotASubset,
            "h9 is not behind this switch".into(),
        );
        assert_eq!(
            f.outcome(),
            Some(Outcome::Failed(Failure::Nak {
                switch_id: 2,
                reason: NakReason::NotASubset,
                detail: "h9 is not behind this switch".into()
            }))
        );
        assert!(!f.settled(), "3 has not answered");
        assert_eq!(f.maybe_applied(), vec![1, 3]);
    }

    #[test]
    fn random_loss_either_grants_or_names_the_silent_agent() {
        // A deterministic LCG stands in for a lossy link.
        let mut seed: u64 = 12345;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % 100
        };
        for _ in 0..200 {
            let mut now = Instant::now();
            let mut f = Fanout::new(1, [1, 2, 3], P, now);
            while f.outcome().is_none() {
                for id in f.poll_transmit(now) {
                    if rnd() >= 40 && rnd() >= 40 {
                        f.on_ack(id, 1);
                    }
                }
                now = f.next_deadline().unwrap_or(now);
            }
            match f.outcome().unwrap() {
                Outcome::AllAcked => assert!(f.peers().iter().all(|(_, s)| s.sends() <= 4)),
                Outcome::Failed(Failure::Silent { sends, .. }) => assert_eq!(sends, 4),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ids_are_unique_and_carry_the_controller() {
        let g = IdGen::new(3);
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        assert_eq!(a >> 56, 3);
    }
}
