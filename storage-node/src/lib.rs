//! Replicast storage node and client: chunks by BLAKE3, put over rendezvous
//! groups, objects by name.
//!
//! # Protocol (messages: `subcast_proto::replicast`, type codes 0x40..0x4d)
//! - Chunk id = BLAKE3(payload). Negotiating group of an id = group number
//!   `u64::from_be_bytes(id[0..8]) mod N` of the configured list
//!   ([`placement`]); manifests are placed by BLAKE3(object name).
//! - Put ([`put::PutMachine`]): PUT_PROPOSAL to the negotiating group ->
//!   PUT_BID (bid / already stored / not now) from members -> R targets by
//!   earliest start, queue depth, free space -> rendezvous mode: the client
//!   asks the controller (RENDEZVOUS_REQUEST) -> PUT_ACCEPT to the group
//!   (targets, delivery group) -> targets join a rendezvous group and send
//!   PUT_READY (unicast and negotiating-group DATA does not wait for it) ->
//!   DATA, paced -> PUT_ACK (stored after verify, write, rename, fsync) or
//!   NACK ranges (repeated unicast). Silent targets are polled
//!   with a unicast PUT_ACCEPT and replaced by spare bidders.
//! - Get ([`get::GetMachine`]): GET_REQUEST to the group -> GET_OFFER (have
//!   / corrupt) -> GET_FETCH to one holder (all, or missing ranges) -> DATA
//!   -> verify; another holder on failure.
//! - Objects ([`objects`]): MANIFEST_QUERY / MANIFEST_OFFER find versions;
//!   a put writes a new version manifest ([`manifest::Manifest`]).
//!
//! # Structure
//! Sans-I/O state machines (take messages and `now`, return datagrams and
//! timers): [`put::PutMachine`], [`get::GetMachine`],
//! [`get::ManifestLookup`], [`receive::Receive`], [`node::NodeCore`]; the
//! daemon ([`daemon`]) and the client driver ([`client`]) own sockets,
//! pacing and timers.

pub mod bench;
pub mod bids;
pub mod catalog;
pub mod chunk_buf;
pub mod chunking;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dir_sync;
pub mod direct_io;
pub mod disk;
pub mod gc;
pub mod get;
pub mod groups;
pub mod index;
pub mod journal;
pub mod keys;
pub mod latency;
pub mod manifest;
pub mod members;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod outgoing;
pub mod placement;
pub mod put;
pub mod put_outcome;
pub mod put_params;
pub mod put_phases;
pub mod receive;
pub mod send_thread;
pub mod sites;
pub mod snapshot;
pub mod store;
pub mod transport;
pub mod udp;
pub mod versions;

#[cfg(test)]
mod sim;
