//! Two puts of one name at once: both versions are kept, and readers see
//! the newest among all answers.

use super::*;
use crate::manifest::Manifest;

fn manifest(version: u64, writer: u32, fill: u8) -> Manifest {
    Manifest {
        name: "b/race".into(),
        version,
        writer,
        size: 3,
        chunk_size: 1024,
        object_hash: [fill; 32],
        created_us: 0,
        chunks: vec![[fill; 32]],
        inline: None,
    }
}

/// Before: a node indexed versions by number only, so the second manifest
/// of version 4 replaced the first (a version silently lost), and a lookup
/// kept the first answer's manifest per number.
#[test]
fn concurrent_puts_of_one_version_keep_both_and_the_higher_writer_wins() {
    let mut sim = Sim::new(4, 0.0, 61);
    let a = manifest(4, 100, 1).encode();
    let b = manifest(4, 200, 2).encode();
    let mut sides = [
        sim.put_tx(21, &a, Mode::NgMulticast, 3, ChunkKind::Manifest),
        sim.put_tx(22, &b, Mode::NgMulticast, 3, ChunkKind::Manifest),
    ];
    sim.run_many(&mut sides, Duration::from_secs(10));
    let mut side = Side::Lookup(ManifestLookup::new(
        3,
        crate::chunking::name_hash("b/race"),
        0,
        GROUP,
        PORT,
        3,
        GetTimers::default(),
        sim.now,
    ));
    if let Side::Lookup(m) = &mut side {
        m.set_members((1..=4).collect());
    }
    sim.run(&mut side, Duration::from_secs(10));
    let Side::Lookup(l) = side else { panic!() };
    let found: Vec<(u64, u32)> = l.versions.keys().map(|k| (k.version, k.writer)).collect();
    assert_eq!(found, vec![(4, 100), (4, 200)], "both versions kept");
    let (newest, f) = crate::versions::newest(&l.versions, None).unwrap();
    assert_eq!((newest.writer, newest.manifest_id), (200, crate::chunking::chunk_id(&b)));
    assert_eq!(f.holders.len(), 3);
    // The next put numbers after both.
    assert_eq!(
        crate::versions::next_version(&l.versions, l.responders().len(), 4, 3),
        Ok(5)
    );
}
