//! Cluster-scale simulation of subcast: the controller's sans-I/O engine and
//! the switch agent's sans-I/O core, driven in simulated time over a
//! simulated leaf-spine fabric whose switches have a table budget and an
//! update rate limit (see README.md).
//!
//! - [`fabric`]: switches, ports, FDBs, the walk of a datagram;
//! - [`setup`]: the controller's YAML and the agents' settings;
//! - [`load`]: negotiating groups and puts;
//! - [`world`]: the event loop around the engine and the agents;
//! - [`lazy`]: lazy MLD joins and unicast (no controller);
//! - [`stats`]: what a run measured, as JSON;
//! - [`run`]: one policy, or all, from the command line's options;
//! - [`validate`]: the seed topology against a lab bench JSON;
//! - [`chart`]: the SVG.

pub mod chart;
pub mod fabric;
pub mod lazy;
pub mod load;
pub mod run;
pub mod setup;
pub mod stats;
pub mod validate;
pub mod world;
