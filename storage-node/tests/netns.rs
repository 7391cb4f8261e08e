//! Multi-process tests: real `subcast-node serve` processes in network
//! namespaces on one Linux bridge, the client as a separate process.
//! Need root; skipped (with a message) otherwise.

mod common;

use common::{Lab, json, ok, random_file, skip};

#[test]
fn baselines_put_get_versions_kill_and_corrupt() {
    if skip() {
        return;
    }
    let mut lab = Lab::new(5, "chunk_size: 262144\nrate_mbps: 300");
    let f1 = random_file(lab.dir.path(), "one.bin", 3 * 262144 + 12345, 1);
    let f2 = random_file(lab.dir.path(), "two.bin", 2 * 262144 + 7, 2);
    let out = lab.dir.path().join("out.bin");

    // ng-multicast put, then get: identical bytes, exactly R copies.
    let p1 = f1.to_str().unwrap();
    let r = json(&ok(&lab.client(&[
        "put",
        p1,
        "--name",
        "b/o",
        "--transport",
        "ng-multicast",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["version"], 1);
    let b3 = |p: &std::path::Path| {
        blake3::hash(&std::fs::read(p).unwrap())
            .to_hex()
            .to_string()
    };
    assert_eq!(r["object_hash"], b3(&f1));
    lab.assert_placement("b/o", 3);
    ok(&lab.client(&["get", "b/o", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f1).unwrap());

    // An object of one chunk up to `inline_max` (256 KiB by default) goes
    // inside its manifest: one transfer, no data chunk; its hash is the
    // one the writer took of it; a get checks it.
    let small = random_file(lab.dir.path(), "small.bin", 262144 - 1, 3);
    let r = json(&ok(&lab.client(&[
        "put",
        small.to_str().unwrap(),
        "--name",
        "b/small",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["object_hash"], b3(&small));
    assert_eq!(
        (r["inline"].as_bool(), r["chunks"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(r["proposals_abandoned"], 0, "a new name is version 1: {r}");
    assert_eq!(r["placement"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["placement"][0].as_array().unwrap().len(), 3, "{r}");
    let stat = json(&ok(&lab.client(&["stat", "b/small", "--json"])));
    assert_eq!(stat["inline"], true, "{stat}");
    assert!(stat["chunks"].as_array().unwrap().is_empty(), "{stat}");
    ok(&lab.client(&["get", "b/small", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&small).unwrap());
    // Overwritten: the manifest proposed as version 1 is given up before
    // its ACCEPT once the lookup finds version 1, and proposed again.
    let small2 = random_file(lab.dir.path(), "small2.bin", 1000, 4);
    let r = json(&ok(&lab.client(&[
        "put",
        small2.to_str().unwrap(),
        "--name",
        "b/small",
        "--quiet",
        "--json",
    ])));
    assert_eq!(
        (r["version"].as_u64(), r["inline"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(r["proposals_abandoned"], 1, "{r}");
    ok(&lab.client(&["get", "b/small", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&small2).unwrap()
    );
    let v1 = [
        "get",
        "b/small",
        "--version",
        "1",
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ];
    ok(&lab.client(&v1));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&small).unwrap());
    // With `--inline-max 0` the same bytes go as one data chunk, whose id
    // is the object hash (hashed once).
    let r = json(&ok(&lab.client(&[
        "put",
        small.to_str().unwrap(),
        "--name",
        "b/chunked",
        "--inline-max",
        "0",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["object_hash"], b3(&small));
    assert_eq!(
        (r["inline"].as_bool(), r["chunks"].as_u64()),
        (Some(false), Some(1))
    );
    lab.assert_placement("b/chunked", 3);
    ok(&lab.client(&["get", "b/chunked", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&small).unwrap());

    // unicast put of another object as version 2 of the same name.
    let r = json(&ok(&lab.client(&[
        "put",
        f2.to_str().unwrap(),
        "--name",
        "b/o",
        "--transport",
        "unicast",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["version"], 2);
    lab.assert_placement("b/o", 3);
    ok(&lab.client(&["get", "b/o", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f2).unwrap());
    ok(&lab.client(&[
        "get",
        "b/o",
        "--version",
        "1",
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f1).unwrap());

    // Non-targets saw payload in ng-multicast mode only; no datagram refused.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let total_refused: u64 = lab
        .nodes
        .iter()
        .map(|i| {
            lab.stats(*i)["node"]["refused_datagrams"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total_refused, 0);

    // A corrupted chunk file on one node: get still correct, and reported.
    let stat = json(&ok(&lab.client(&["stat", "b/o", "--json"])));
    let first = stat["chunks"][0].as_str().unwrap().to_owned();
    let holder = lab.placement()[&first][0];
    let path = lab.chunk_file(holder, &first);
    let mut b = std::fs::read(&path).unwrap();
    b[1000] ^= 0x5a;
    std::fs::write(&path, b).unwrap();
    let o = lab.client(&["get", "b/o", "-o", out.to_str().unwrap(), "--quiet"]);
    ok(&o);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f2).unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("node {holder} held a corrupt copy")),
        "{err}"
    );
    assert!(lab.store(holder).join("quarantine").join(&first).exists());
    // The holder fetches its copy back from another holder: the file is
    // there again, with the right content (waited for, not slept on).
    let t0 = std::time::Instant::now();
    loop {
        let back = std::fs::read(&path).unwrap_or_default();
        if blake3::hash(&back).to_hex().as_str() == first {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "node {holder} did not restore chunk {first}: {}",
            lab.log(holder)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    lab.assert_placement("b/o", 3);

    // One node killed after the put: get still works.
    let victim = lab.placement()[stat["chunks"][1].as_str().unwrap()][0];
    lab.kill(victim);
    ok(&lab.client(&["get", "b/o", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f2).unwrap());
}

#[test]
fn puts_and_gets_complete_with_one_percent_loss() {
    if skip() {
        return;
    }
    let lab = Lab::new(4, "chunk_size: 262144\nrate_mbps: 300");
    lab.set_loss(1.0);
    let out = lab.dir.path().join("out.bin");
    // Different contents: a lost "already stored" bid would otherwise add a
    // fourth copy of a shared chunk (over-replication, by design harmless).
    for (name, mode, seed) in [("l/ng", "ng-multicast", 3), ("l/uc", "unicast", 5)] {
        let f = random_file(lab.dir.path(), "lossy.bin", 4 * 262144 + 99, seed);
        ok(&lab.client(&[
            "put",
            f.to_str().unwrap(),
            "--name",
            name,
            "--transport",
            mode,
            "--quiet",
        ]));
        ok(&lab.client(&["get", name, "-o", out.to_str().unwrap(), "--quiet"]));
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
    }
    lab.set_loss(0.0);
    lab.assert_placement("l/ng", 3);
    lab.assert_placement("l/uc", 3);
}

#[test]
fn too_few_nodes_is_a_clear_error() {
    if skip() {
        return;
    }
    let lab = Lab::new(2, "chunk_size: 65536");
    let f = random_file(lab.dir.path(), "small.bin", 1000, 4);
    let o = lab.client(&["put", f.to_str().unwrap(), "--name", "x/y", "--quiet"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("only 2 of 3 targets"), "{err}");

    // Bad input: garbage, a truncated header, a datagram under a foreign
    // secret, an oversized length, and the client (a key holder: it has
    // K(100, 1)) claiming to be node 2. Refused, counted, the node keeps
    // serving.
    let get = subcast_proto::replicast::ReplicastMessage::GetRequest(
        subcast_proto::replicast::GetRequest {
            txid: 1,
            chunk_id: [0; 32],
        },
    );
    let now = subcast_proto::now_us();
    let stranger = subcast_proto::PairKeys::provision(1, &[0x77; 32], 100, [1]).unwrap();
    let foreign = subcast_proto::replicast::seal(&stranger, now, now, &[1], &get).unwrap();
    let mut oversized = foreign.clone();
    oversized[6] = 0xff;
    let client_keys = subcast_node::keys::KeyFile::load(&lab.key_file(common::CLIENT))
        .unwrap()
        .pair_keys()
        .unwrap();
    let mut forged =
        subcast_proto::replicast::seal(&client_keys, now + 1, now, &[1], &get).unwrap();
    forged[12..16].copy_from_slice(&2u32.to_be_bytes());
    let body_end = forged.len() - 21;
    let forged =
        subcast_proto::replicast::tag_encoded(&client_keys, &forged[..body_end], &[1]).unwrap();
    let bad: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        foreign[..20].to_vec(),
        foreign,
        oversized,
        forged,
    ];
    for (n, b) in bad.iter().enumerate() {
        let p = lab.dir.path().join(format!("bad{n}"));
        std::fs::write(&p, b).unwrap();
        common::run(&[
            "ip",
            "netns",
            "exec",
            &lab.ns(common::CLIENT),
            "socat",
            "-u",
            &format!("FILE:{}", p.display()),
            "UDP6-SENDTO:[fd00:5c::1]:7412",
        ]);
    }
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let stats = lab.stats(1);
    let refused = stats["node"]["refused_datagrams"].as_u64().unwrap();
    assert_eq!(refused, 5, "{stats}");
    // The foreign secret and the forged sender fail the tag.
    assert_eq!(stats["node"]["refused_by_reason"]["bad-mac"], 2, "{stats}");
    let o = lab.client(&[
        "put",
        f.to_str().unwrap(),
        "--name",
        "x/y",
        "--replicas",
        "2",
        "--quiet",
    ]);
    ok(&o);
}

/// The insecure single-key lab mode (`key:`, as configs written before pair
/// keys) still stores and reads.
#[test]
fn single_key_lab_mode_still_works() {
    if skip() {
        return;
    }
    let lab = Lab::single_key(3, "chunk_size: 65536");
    let f = random_file(lab.dir.path(), "sk.bin", 200_000, 9);
    let out = lab.dir.path().join("sk.out");
    ok(&lab.client(&["put", f.to_str().unwrap(), "--name", "s/k", "--quiet"]));
    ok(&lab.client(&["get", "s/k", "-o", out.to_str().unwrap(), "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
    let check = lab.client(&["check-config"]);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("INSECURE"),
        "{check:?}"
    );
}
