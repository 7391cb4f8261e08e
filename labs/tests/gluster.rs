//! GlusterFS as a peer (root and `glusterfs-server glusterfs-client` only; skipped
//! with a message otherwise, failed under SUBCAST_LABS_REQUIRED=1).

use labs::gluster::{self, ClientMode, GlusterOptions, GlusterVolume};
use labs::{Lab, LabOptions, Topology, netns, topology_path};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn enabled(test: &str) -> bool {
    if gluster::available() {
        true
    } else {
        println!(
            "SKIP {test}: needs root, iproute2 and GlusterFS ({}); missing: {:?}",
            gluster::INSTALL_HINT,
            gluster::missing()
        );
        false
    }
}

fn seed_lab() -> Lab {
    let topo = Topology::from_yaml_file(topology_path("seed-three-switch.yaml")).unwrap();
    Lab::build(&topo, LabOptions::default()).unwrap()
}

/// Files of one bench run found in a brick (name prefix `<peer>-run<N>-`), with sizes.
fn brick_files(vol: &GlusterVolume, host: &str, prefix: &str) -> Vec<(String, u64)> {
    let dir = vol.brick_of(host).unwrap();
    let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with(prefix)
                .then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    v.sort();
    v
}

fn check(vol: &GlusterVolume, r: &gluster::PeerBenchResult, size: u64, puts: u64, run: u32) {
    let json = serde_json::to_string(r).unwrap();
    println!("{json}");
    assert!(r.ok && r.verified, "{json}");
    assert_eq!((r.puts, r.object_size), (puts, size), "{json}");
    assert!(r.put_ms.p50 > 0.0 && r.put_ms.max >= r.put_ms.p99, "{json}");
    // Client-side replication: the client sends every byte to each of the three
    // servers (plus headers and protocol), so about 3 bytes per payload byte.
    let per = r.sender_egress_per_payload_byte;
    assert!(
        per > 2.5 && per < 4.0,
        "egress per payload byte {per}: {json}"
    );
    // Unicast to the servers only: the other hosts see (nearly) nothing of it.
    let others = r
        .bytes_at_non_targets
        .expect("the seed topology has other hosts");
    assert!(
        others * 100 < size * puts,
        "{others} bytes at non-targets: {json}"
    );
    // Every server's brick holds every object, whole.
    let prefix = format!("{}-run{run}-", r.peer);
    for s in vol.servers() {
        let files = brick_files(vol, s, &prefix);
        assert_eq!(files.len() as u64, puts, "brick of {s}: {files:?}");
        assert!(
            files.iter().all(|(_, len)| *len == size),
            "brick of {s}: {files:?}"
        );
    }
}

#[test]
fn replica3_fuse_and_gfapi_on_the_seed_topology() {
    if !enabled("replica3_fuse_and_gfapi_on_the_seed_topology") {
        return;
    }
    let t0 = std::time::Instant::now();
    let lab = seed_lab();
    let prefix = lab.prefix().to_string();
    let servers = gluster::default_servers(&lab, "X2", 3);
    assert_eq!(servers, ["X1", "X3", "X4"]);
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();

    // A build that fails half-way (glusterd up and peered, then `volume create`
    // refuses the name) says why and leaves nothing behind.
    let bad = GlusterOptions {
        volume: "no/such".into(),
        ..GlusterOptions::default()
    };
    let err = GlusterVolume::build(&lab, &servers, "X2", bad).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("volume create no/such"), "{text}");
    let after_failure = gluster::Footprint {
        mount_namespaces: Vec::new(),
        dir: lab.workdir().join("gluster"),
        held: Vec::new(),
    };
    let left = after_failure.leftovers();
    assert!(left.is_empty(), "a failed build left: {left:#?}");
    println!("failed build cleaned up after {:?}", t0.elapsed());

    let mut vol = GlusterVolume::build(&lab, &servers, "X2", GlusterOptions::default()).unwrap();
    println!("volume up after {:?}", t0.elapsed());
    let footprint = vol.footprint();
    assert_eq!(footprint.mount_namespaces.len(), 4);
    assert!(footprint.leftovers().len() > 1, "a running volume shows up");

    // The FUSE mount exists only in the client's private mount namespace.
    let mp = vol.mountpoint().to_string_lossy().into_owned();
    let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !ours.contains(&mp),
        "FUSE mount leaked into the test's namespace"
    );
    let theirs = std::fs::read_to_string(format!("/proc/{}/mountinfo", vol.client_pid())).unwrap();
    assert!(
        theirs.contains(&mp),
        "no FUSE mount in the client namespace"
    );

    let r = vol.bench(ClientMode::Fuse, 256 * KIB, 4).unwrap();
    check(&vol, &r, 256 * KIB, 4, 0);
    let r = vol.bench(ClientMode::Fuse, 4 * MIB, 1).unwrap();
    check(&vol, &r, 4 * MIB, 1, 1);
    let r = vol.bench(ClientMode::Gfapi, 256 * KIB, 4).unwrap();
    check(&vol, &r, 256 * KIB, 4, 2);
    let r = vol.bench(ClientMode::Gfapi, 4 * MIB, 1).unwrap();
    check(&vol, &r, 4 * MIB, 1, 3);
    // The baseline, same program on the client's local disk: the counters that saw
    // ~3 bytes per payload byte above see (nearly) nothing without a network.
    let r = vol.bench(ClientMode::LocalDisk, 256 * KIB, 4).unwrap();
    println!("{}", serde_json::to_string(&r).unwrap());
    assert!(r.ok && r.peer == "local-disk", "{r:?}");
    assert!(r.sender_egress_per_payload_byte < 0.05, "{r:?}");

    drop(vol);
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
    drop(lab);
    let ns: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(ns.is_empty(), "namespaces left: {ns:?}");
    println!("whole test {:?}", t0.elapsed());
}

/// The peer's numbers (issue 20): 256 KiB p50/p99 over 200 writes and 64 MiB
/// throughput, FUSE and libgfapi, unshaped, on the seed topology. Prints a table and
/// writes JSON to `$SUBCAST_GLUSTER_BENCH_OUT` (default
/// `target/gluster-peer-bench.json`). Run with
/// `cargo test --release -p subcast-labs --test gluster -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: ~1-2 minutes, run by hand"]
fn bench_glusterfs_peer() {
    if !enabled("bench_glusterfs_peer") {
        return;
    }
    let lab = seed_lab();
    let servers = gluster::default_servers(&lab, "X2", 3);
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    let mut vol = GlusterVolume::build(&lab, &servers, "X2", GlusterOptions::default()).unwrap();
    let results = gluster::run_plan(&mut vol, &gluster::BenchPlan::standard()).unwrap();
    println!("GlusterFS replica 3, servers {servers:?}, client X2, unshaped");
    print!("{}", gluster::table(&results));
    let out = std::env::var("SUBCAST_GLUSTER_BENCH_OUT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/gluster-peer-bench.json"
        )
        .to_string()
    });
    let json = serde_json::json!({
        "topology": "seed-three-switch.yaml",
        "servers": servers,
        "client": "X2",
        "shaped": false,
        "results": results,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {out}");
    assert!(results.iter().all(|r| r.ok), "a run failed");
}
