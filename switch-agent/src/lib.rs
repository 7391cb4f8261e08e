//! The switch agent: authenticated SET_SUBSET/CLEAR to forwarding state
//! through one backend.

pub mod backend;
