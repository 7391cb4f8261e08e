//! The switch agent: authenticated SET_SUBSET/CLEAR to forwarding state
//! through one backend.
//!
//! - [`core`]: backend-independent: validation, the subset rule, leases,
//!   metrics; the [`core::Agent`] turns datagrams into backend calls and
//!   sealed answers.
//! - [`backend`]: the [`backend::Backend`] trait and its implementations.
//! - [`config`]: the YAML configuration.
//! - [`daemon`]: sockets, timers and the metrics server around the core.

pub mod backend;
pub mod config;
pub mod core;
pub mod daemon;
