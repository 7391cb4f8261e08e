//! Wire formats shared by every subcast process.
//!
//! - [`header`]: the 32-octet datagram header.
//! - [`push`]: controller <-> switch agent (HELLO, HEARTBEAT, SET_SUBSET,
//!   CLEAR, ACK, NAK, HELLO_ACK).
//! - [`batch`]: BATCH and BATCH_ACK (several groups in one instruction).
//! - [`rendezvous`]: storage node <-> controller (RENDEZVOUS_REQUEST,
//!   RENDEZVOUS_GRANT, RENDEZVOUS_RELEASE, RELEASE_ACK).
//! - [`group`]: IPv4 and IPv6 groups in one 16-octet field, family rules.
//! - [`member`]: unicast members, member lists and BIER-style bitmaps.
//! - [`auth`]: keys, keyed BLAKE3 tags, the replay window.
//! - [`pairkeys`]: Replicast identity: keys per pair of nodes, derived
//!   from a cluster secret.
//! - [`replicast`]: storage node messages in their tag-list envelope.
//! - [`message`]: the [`Message`] enum, [`seal`] and [`Opener::open`].
//!
//! Contract: decoding is total. Any byte string yields a value or an error,
//! never a panic, and nothing is allocated for a length field before the
//! bytes it announces are known to be present. No I/O, no runtime.

pub mod auth;
pub mod batch;
pub mod envelope;
pub mod error;
pub mod group;
pub mod header;
pub mod member;
pub mod message;
pub mod pairkeys;
pub mod push;
pub mod rendezvous;
pub mod replicast;
pub mod wire;

pub use auth::{Key, KeyError, Keyring, ReplayGuard, ReplayWindow};
pub use batch::{Batch, BatchAck, BatchItem, MAX_BATCH_ITEMS};
pub use envelope::{Body, Envelope, MAX_DATAGRAM, Origin, Sealer};
pub use error::{DecodeError, OpenError};
pub use group::{Family, GroupAddr, group_field};
pub use header::Header;
pub use member::{Bitmap, MacAddr, Member, Members};
pub use message::{Datagram, Message, Opener, decode, msg_type, now_us, seal, verify_tag};
pub use push::{Ack, BackendKind, Clear, Heartbeat, Hello, HelloAck, Nak, NakReason, SetSubset};
pub use rendezvous::{
    GrantOutcome, RefuseReason, ReleaseAck, RendezvousGrant, RendezvousRelease, RendezvousRequest,
};

/// The UDP port agents listen on for the push protocol (draft: TBD1).
pub const DEFAULT_AGENT_PORT: u16 = 7410;
/// The UDP port the controller listens on (HELLO/ACK/NAK and rendezvous).
pub const DEFAULT_CONTROLLER_PORT: u16 = 7411;
pub use pairkeys::{PairKeyError, PairKeys};
pub use replicast::{ReplicastDatagram, ReplicastMessage, ReplicastSealer};
