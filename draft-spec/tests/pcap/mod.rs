//! Test pcaps: synthetic Ethernet/IPv6/UDP frames around datagrams.

use std::path::{Path, PathBuf};

/// The Ethernet, IPv6 and UDP headers in front of every datagram.
pub const L2_L4: usize = 14 + 40 + 8;

fn udp_checksum(src: &[u8; 16], dst: &[u8; 16], udp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&(udp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 17]);
    add(udp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        c => c,
    }
}

/// An Ethernet/IPv6/UDP frame from fd00:5c::1 to fd00:5c::2 carrying `payload`.
pub fn frame(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let src: [u8; 16] = "fd00:5c::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let dst: [u8; 16] = "fd00:5c::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let c = udp_checksum(&src, &dst, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&udp);
    f
}

/// A classic pcap file (microseconds, Ethernet) holding `frames`.
pub fn write_pcap(dir: &Path, name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let mut d = Vec::new();
    d.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    d.extend_from_slice(&2u16.to_le_bytes());
    d.extend_from_slice(&4u16.to_le_bytes());
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(&65535u32.to_le_bytes());
    d.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        d.extend_from_slice(&(1_795_651_200 + i as u32).to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&(f.len() as u32).to_le_bytes());
        d.extend_from_slice(&(f.len() as u32).to_le_bytes());
        d.extend_from_slice(f);
    }
    let p = dir.join(name);
    std::fs::write(&p, d).expect("write pcap");
    p
}

/// Where a datagram of this type is sent: Replicast to storage nodes
/// (7412), the rest to an agent (7410), from the controller's port.
pub fn port_for(bytes: &[u8]) -> u16 {
    match bytes.get(3) {
        Some(t) if *t >= 0x40 => 7412,
        _ => 7410,
    }
}
