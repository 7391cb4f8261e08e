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

use rv::{NODES, put_with_retry, setup_ipv4};

#[test]
fn ipv4_rendezvous_put_reaches_only_the_targets() {
    let Some(rv) = setup_ipv4("chunk_size: 262144\nrate_mbps: 300") else {
        return;
    };
    let d = rv.dir.path();
    let size = 3 * 262144 + 1000;
    let data: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
    let file = d.join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let caps: Vec<_> = (1..=NODES)
        .map(|i| {
            rv.lab
                // (a bare IPv4 address in the filter makes the capture IPv4)
                .capture(&format!("H{i}"), "dst net 239.92.128.0 mask 255.255.255.0")
                .unwrap()
        })
        .collect();
    let out = put_with_retry(&rv, &file, "rv4/obj", "rendezvous");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts: Vec<u64> = caps
        .into_iter()
        .map(|c| c.stop().unwrap().datagrams)
        .collect();

    let placement = report["placement"].as_array().unwrap();
    for p in placement {
        assert_eq!(p.as_array().unwrap().len(), 3, "{report}");
    }
    // Datagrams are sized for 48 octets of IP + UDP in both families.
    let per = 1500 - 48 - subcast_proto::replicast::data_overhead(3);
    let mut expect = vec![0u64; NODES];
    let chunk_sizes: Vec<usize> = (0..4).map(|i| (size - i * 262144).min(262144)).collect();
    for (i, p) in placement.iter().enumerate().take(4) {
        for n in p.as_array().unwrap() {
            expect[n.as_u64().unwrap() as usize - 1] += chunk_sizes[i].div_ceil(per) as u64;
        }
    }
    eprintln!("datagrams to IPv4 rendezvous groups per host: {counts:?}; placement {placement:?}");
    assert!(counts.iter().sum::<u64>() > 0, "{}", rv.logs());
    for (i, (got, want)) in counts.iter().zip(&expect).enumerate() {
        let manifest_here = placement[4]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_u64() == Some(i as u64 + 1));
        assert_eq!(
            *got,
            want + u64::from(manifest_here),
            "host H{}: {counts:?} vs {expect:?} (placement {placement:?})\n{}",
            i + 1,
            rv.logs()
        );
    }
    let got = d.join("out.bin");
    let o = rv.client(&["get", "rv4/obj", "-o", got.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data);
}
