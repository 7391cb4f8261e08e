//! Answers already given, so that a retransmitted instruction (same sender
//! and txid, sealed again by the controller) gets the same answer and
//! nothing is applied twice. Only applied instructions (ACK, BATCH_ACK) are
//! kept: a refused one changed nothing and is simply evaluated again.
//! Bounded by age and count.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use subcast_proto::Message;

/// Key of an instruction: (sender id, txid).
pub type TxKey = (u32, u64);

#[derive(Debug)]
pub struct Answers {
    map: HashMap<TxKey, Message>,
    order: VecDeque<(Instant, TxKey)>,
    ttl: Duration,
    cap: usize,
}

impl Answers {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Answers {
            map: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            cap: cap.max(1),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some((t, k)) = self.order.front().copied() {
            if now.saturating_duration_since(t) <= self.ttl && self.order.len() <= self.cap {
                break;
            }
            self.order.pop_front();
            self.map.remove(&k);
        }
    }

    pub fn get(&mut self, key: TxKey, now: Instant) -> Option<&Message> {
        self.prune(now);
        self.map.get(&key)
    }

    pub fn insert(&mut self, key: TxKey, answer: Message, now: Instant) {
        if self.map.insert(key, answer).is_none() {
            self.order.push_back((now, key));
        }
        self.prune(now);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subcast_proto::Ack;

    fn ack(txid: u64) -> Message {
        Message::Ack(Ack {
            txid,
            switch_id: 1,
            port_count: 2,
        })
    }

    #[test]
    fn bounded_by_age_and_count() {
        let t0 = Instant::now();
        let mut a = Answers::new(Duration::from_secs(10), 3);
        for i in 0..5 {
            a.insert((1, i), ack(i), t0);
        }
        assert_eq!(a.len(), 3);
        assert!(a.get((1, 0), t0).is_none());
        assert_eq!(a.get((1, 4), t0), Some(&ack(4)));
        assert!(a.get((2, 4), t0).is_none(), "another sender");
        assert!(a.get((1, 4), t0 + Duration::from_secs(11)).is_none());
        assert!(a.is_empty());
    }
}
