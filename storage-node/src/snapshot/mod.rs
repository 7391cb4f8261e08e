//! Snapshots, clones, deletes and listings of buckets (issue 16).
//!
//! - A **tombstone** is a version manifest that says "deleted"
//!   ([`record::tombstone`]); a get of a name whose newest version is one
//!   fails with "deleted", older versions stay readable by number.
//! - A **snapshot** of a bucket is an immutable record (object name ->
//!   version manifest) as of one instant, stored as the object
//!   `.snapshots/BUCKET/NAME` ([`record::SnapshotRecord`]): its bytes are
//!   chunks named by BLAKE3, replicated and verified like any object.
//! - A **clone** is a new name whose first version names the chunks of a
//!   snapshot's version: no data is copied; later puts to it make new
//!   versions of the new name only.
//! - **Listing** a bucket asks every negotiating group for the manifests
//!   its members hold (the catalog form of MANIFEST_QUERY,
//!   [`crate::catalog`]) and reads them.
//! - **gc**: [`mark`] here, the sweep in the node ([`crate::gc`]).
//!
//! The instant of a snapshot (the cut, `cut_us`, taken by the creating
//! client just before it lists): the snapshot holds, of each object, the
//! newest version stamped (`created_us`, its writer's clock when the
//! manifest was made) at or before the cut among the manifests the
//! members had stored when they answered the listing. So every put
//! acknowledged before the cut is in it (its manifest was on R nodes, and
//! a holder answered), no put begun after the cut is, and a put under way
//! at the cut is in it or not as a whole. Clocks are assumed within the
//! replay window (30 s) of each other; puts stamped within the skew of
//! the cut count as under way.

pub mod cli;
pub mod list;
pub mod mark;
pub mod ops;
pub mod record;
pub mod rules;

pub use ops::get;
