//! Rendezvous over IPv4 end to end (issue 21, stage 4): the labs harness
//! builds one Linux bridge, `subcast-agent` drives it with an IPv4
//! rendezvous range, `subcast-controller` leases groups from an IPv4 pool
//! (239.92.128.0/24) for IPv4 parents (239.92.0.1-2, members by `ipv4:`),
//! five `subcast-node serve` processes on 10.92.0.0/24 store, the client
//! puts with `--transport rendezvous`. Checks: bytes identical after a
//! get, every chunk on exactly R nodes, and each payload datagram to an
//! IPv4 rendezvous group reached exactly its R targets (tcpdump on every
//! host).
//!
//! Needs root and the controller and agent binaries (see
//! `tests/rendezvous.rs`); skipped otherwise.

mod rv;

use rv::{put_reaches_only_the_targets, setup_ipv4};

#[test]
fn ipv4_rendezvous_put_reaches_only_the_targets() {
    let Some(rv) = setup_ipv4("chunk_size: 262144\nrate_mbps: 300") else {
        return;
    };
    // (a bare IPv4 address in the filter makes the capture IPv4)
    put_reaches_only_the_targets(
        &rv,
        "dst net 239.92.128.0 mask 255.255.255.0",
        "rv4/obj",
        13,
    );
}
