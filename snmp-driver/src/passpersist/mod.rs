//! A net-snmp `pass_persist` handler that serves Q-BRIDGE-MIB from a Linux bridge: the test
//! switch for [`crate::SnmpSwitch`]. See [`agent`] for the row semantics and the
//! MAC <-> IPv6 group convention, [`protocol`] for the wire format.
//!
//! Served under `.1.3.6.1.2.1.17` (register it with `pass_persist .1.3.6.1.2.1.17 PROGRAM`):
//! dot1dBasePort / dot1dBasePortIfIndex, dot1qTpFdbPort / dot1qTpFdbStatus (fdbId 1), and
//! dot1qStaticMulticastTable (VLAN 1, receive port 0; columns 3, 4, 5; writable).
//! Port numbers are the bridge's own (`/sys/class/net/BR/brif/IF/port_no`). The bridge is
//! read and written over rtnetlink ([`bridge`], [`netlink`]); no process is started.

pub mod agent;
pub mod bridge;
pub mod group_prefix;
pub mod netlink;
pub mod netns;
pub mod protocol;
pub mod render;
pub mod set_pdu;

pub use agent::Agent;
pub use bridge::Bridge;
pub use group_prefix::{GroupPrefix, GroupPrefixError, Ipv4Prefix, Ipv4PrefixError};

use std::io::{BufRead, Write};

/// Serves requests from `input` until it closes, writing answers to `output`.
pub fn serve<R: BufRead, W: Write>(
    agent: &mut Agent,
    input: &mut R,
    output: &mut W,
) -> std::io::Result<()> {
    while let Some(req) = protocol::read_request(input)? {
        tracing::debug!(?req, "request");
        let resp = agent.handle(req);
        tracing::debug!(?resp, "response");
        output.write_all(resp.render().as_bytes())?;
        output.flush()?;
    }
    Ok(())
}
