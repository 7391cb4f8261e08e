//! Identity for Replicast: one key per pair of nodes, derived from a
//! cluster secret that only provisioning holds.
//!
//! `K(a, b) = BLAKE3-derive_key("subcast replicast pair v1",
//! secret || min(a, b) as u32 BE || max(a, b) as u32 BE)`. Node `n` is
//! given `K(n, m)` for each peer `m` it talks to, and never the secret: a
//! compromised node can claim to be itself only, toward the peers it
//! shares a key with, and cannot tag anything another node would accept
//! as coming from a third node.
//!
//! The insecure single-key mode ([`PairKeys::shared`], for labs) gives
//! every holder one key derived from the secret under
//! "subcast replicast shared v1"; its datagrams carry one tag entry for
//! the wildcard receiver [`ANY_RECEIVER`], which any holder accepts from
//! any claimed sender. Nothing then binds a sender id to a key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Context string of [`derive_pair_key`].
pub const PAIR_KEY_CONTEXT: &str = "subcast replicast pair v1";
/// Context string of the key of the insecure single-key mode.
pub const SHARED_KEY_CONTEXT: &str = "subcast replicast shared v1";
/// Receiver id of the one tag entry of the insecure single-key mode. Never
/// a node id.
pub const ANY_RECEIVER: u32 = 0;

/// The key node `a` and node `b` share (symmetric in `a`, `b`).
pub fn derive_pair_key(secret: &[u8; 32], a: u32, b: u32) -> [u8; 32] {
    let mut m = [0u8; 40];
    m[..32].copy_from_slice(secret);
    m[32..36].copy_from_slice(&a.min(b).to_be_bytes());
    m[36..40].copy_from_slice(&a.max(b).to_be_bytes());
    blake3::derive_key(PAIR_KEY_CONTEXT, &m)
}

/// The key of the insecure single-key mode.
pub fn derive_shared_key(secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(SHARED_KEY_CONTEXT, secret)
}

/// A pair-key set that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairKeyError {
    #[error(
        "node id 0 is reserved (the wildcard receiver); give every node and client an id from 1"
    )]
    ZeroId,
    #[error("node {0} cannot hold a key with itself: remove it from its own peer list")]
    SelfPair(u32),
}

#[derive(Clone)]
enum Kind {
    /// Secure: one key per peer.
    Pairs(HashMap<u32, [u8; 32]>),
    /// Insecure single-key mode: one key for everyone.
    Shared([u8; 32]),
}

/// The Replicast keys of one node or client: its id, the key generation
/// (the header's Key ID) and its pair keys.
#[derive(Clone)]
pub struct PairKeys {
    key_id: u32,
    own_id: u32,
    kind: Kind,
}

impl PairKeys {
    /// A node's pair keys as provisioning gave them: peer id -> K(own, peer).
    pub fn from_pairs(
        key_id: u32,
        own_id: u32,
        pairs: impl IntoIterator<Item = (u32, [u8; 32])>,
    ) -> Result<Self, PairKeyError> {
        if own_id == ANY_RECEIVER {
            return Err(PairKeyError::ZeroId);
        }
        let mut map = HashMap::new();
        for (peer, key) in pairs {
            if peer == ANY_RECEIVER {
                return Err(PairKeyError::ZeroId);
            }
            if peer == own_id {
                return Err(PairKeyError::SelfPair(peer));
            }
            map.insert(peer, key);
        }
        Ok(PairKeys {
            key_id,
            own_id,
            kind: Kind::Pairs(map),
        })
    }

    /// Provisioning: node `own_id`'s keys with `peers`, derived from the
    /// cluster secret (which the result does not keep).
    pub fn provision(
        key_id: u32,
        secret: &[u8; 32],
        own_id: u32,
        peers: impl IntoIterator<Item = u32>,
    ) -> Result<Self, PairKeyError> {
        let peers: Vec<u32> = peers.into_iter().filter(|p| *p != own_id).collect();
        Self::from_pairs(
            key_id,
            own_id,
            peers
                .into_iter()
                .map(|p| (p, derive_pair_key(secret, own_id, p))),
        )
    }

    /// The insecure single-key mode: every holder of `secret` may claim any
    /// sender id (see the module docs).
    pub fn shared(key_id: u32, own_id: u32, secret: &[u8; 32]) -> Self {
        PairKeys {
            key_id,
            own_id,
            kind: Kind::Shared(derive_shared_key(secret)),
        }
    }

    /// The header's Key ID: the generation of the cluster secret.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// This node's id (the header's Sender ID of what it sends).
    pub fn own_id(&self) -> u32 {
        self.own_id
    }

    /// Whether this is the insecure single-key mode.
    pub fn is_shared(&self) -> bool {
        matches!(self.kind, Kind::Shared(_))
    }

    /// Peers this node holds a key with, ascending (empty in single-key mode).
    pub fn peers(&self) -> Vec<u32> {
        match &self.kind {
            Kind::Pairs(m) => {
                let mut v: Vec<u32> = m.keys().copied().collect();
                v.sort_unstable();
                v
            }
            Kind::Shared(_) => Vec::new(),
        }
    }

    /// Whether a datagram from `peer` can be authenticated here.
    pub fn knows(&self, peer: u32) -> bool {
        match &self.kind {
            Kind::Pairs(m) => m.contains_key(&peer),
            Kind::Shared(_) => true,
        }
    }

    /// The pair keys, by peer (for writing a key file; none in single-key
    /// mode).
    pub fn pair_keys(&self) -> BTreeMap<u32, [u8; 32]> {
        match &self.kind {
            Kind::Pairs(m) => m.iter().map(|(k, v)| (*k, *v)).collect(),
            Kind::Shared(_) => BTreeMap::new(),
        }
    }

    /// The key that tags an entry for `receiver`.
    pub(crate) fn tag_key(&self, receiver: u32) -> Option<&[u8; 32]> {
        match &self.kind {
            Kind::Pairs(m) => m.get(&receiver),
            Kind::Shared(k) => (receiver == ANY_RECEIVER).then_some(k),
        }
    }

    /// The key a transfer key is wrapped under for `receiver` (its pair
    /// key, or the shared key in single-key mode).
    pub(crate) fn wrap_key(&self, receiver: u32) -> Option<&[u8; 32]> {
        match &self.kind {
            Kind::Pairs(m) => m.get(&receiver),
            Kind::Shared(k) => Some(k),
        }
    }

    /// The receiver id of the entry this node verifies.
    pub(crate) fn own_entry(&self) -> u32 {
        match self.kind {
            Kind::Pairs(_) => self.own_id,
            Kind::Shared(_) => ANY_RECEIVER,
        }
    }

    /// The key that verifies this node's entry in a datagram from `sender`.
    pub(crate) fn open_key(&self, sender: u32) -> Option<&[u8; 32]> {
        match &self.kind {
            Kind::Pairs(m) => m.get(&sender),
            Kind::Shared(k) => Some(k),
        }
    }
}

impl fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.kind {
            Kind::Pairs(m) => format!("{} pair keys", m.len()),
            Kind::Shared(_) => "insecure single key".to_owned(),
        };
        write!(
            f,
            "PairKeys {{ key_id: {}, own_id: {}, {mode}: <redacted> }}",
            self.key_id, self.own_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_key_is_symmetric_and_distinct() {
        let s = [7u8; 32];
        assert_eq!(derive_pair_key(&s, 1, 2), derive_pair_key(&s, 2, 1));
        assert_ne!(derive_pair_key(&s, 1, 2), derive_pair_key(&s, 1, 3));
        assert_ne!(derive_pair_key(&s, 1, 2), derive_pair_key(&[8; 32], 1, 2));
        // Not confusable across the id boundary (1, 0x100) vs (0x1_00, 1).
        assert_ne!(derive_pair_key(&s, 1, 256), derive_pair_key(&s, 256, 2));
    }

    #[test]
    fn provisioning_holds_only_own_pairs() {
        let s = [9u8; 32];
        let k = PairKeys::provision(1, &s, 3, [1, 2, 3, 4]).unwrap();
        assert_eq!(k.peers(), vec![1, 2, 4]);
        assert_eq!(k.tag_key(1), Some(&derive_pair_key(&s, 3, 1)));
        assert!(k.tag_key(ANY_RECEIVER).is_none());
        assert!(!k.knows(5));
        assert_eq!(
            PairKeys::provision(1, &s, 0, [1]).unwrap_err(),
            PairKeyError::ZeroId
        );
        assert_eq!(
            PairKeys::from_pairs(1, 2, [(2, [0; 32])]).unwrap_err(),
            PairKeyError::SelfPair(2)
        );
        assert!(!format!("{k:?}").contains("09"), "keys are redacted");
    }
}
