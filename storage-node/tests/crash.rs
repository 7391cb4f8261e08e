//! Crashes and full disks, with real `subcast-node serve` processes in
//! network namespaces (see `common`): a node killed with SIGKILL in the
//! middle of writes keeps every chunk it acknowledged, readable and
//! verified, after a restart; a node whose store is on a small full
//! filesystem refuses with `full` and loses nothing. Need root; skipped
//! (with a message) otherwise, failing instead under SUBCAST_LABS_REQUIRED.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CLIENT, Lab, bin, random_file, skip};

fn json(o: &std::process::Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "client failed: {}\n{s}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Chunk files (name -> path) under a store's `data/` and `manifests/`.
fn chunk_files(store: &Path) -> Vec<(String, PathBuf)> {
    fn walk(p: &Path, out: &mut Vec<(String, PathBuf)>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64 {
                    out.push((name, path));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&store.join("data"), &mut out);
    walk(&store.join("manifests"), &mut out);
    out
}

/// Every data chunk file in `store` hashes to its name (no torn or partial
/// file was left where a chunk belongs); returns the verified ids.
fn verified_data(store: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, path) in chunk_files(store) {
        if !path.starts_with(store.join("data")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            name,
            "{} does not hash to its name ({} bytes)",
            path.display(),
            bytes.len()
        );
        ids.push(name);
    }
    ids
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_9_in_the_middle_of_writes_keeps_every_acked_chunk() {
    if skip() {
        return;
    }
    kill_9_in_the_middle_of_writes("");
}

/// The same with the store's journal on (`journal_mib`): chunks acknowledged
/// on a journal record, their files fsynced later by a checkpoint.
#[test]
fn kill_9_with_the_journal_on_keeps_every_acked_chunk() {
    if skip() {
        return;
    }
    let lab = kill_9_in_the_middle_of_writes(", journal_mib: 4, journal_checkpoint_ms: 60000");
    // The journal carried the puts: a node that was not killed says so.
    let mut journaled = 0;
    wait_for(
        "a node's stats.json to count journaled chunks",
        Duration::from_secs(30),
        || {
            journaled = lab
                .nodes
                .iter()
                .filter_map(|i| lab.stats(*i)["store"]["journaled"].as_u64())
                .max()
                .unwrap_or(0);
            journaled > 0
        },
    );
    println!("journaled chunks on the busiest node: {journaled}");
}

/// The same with every chunk written around the page cache (`O_DIRECT`
/// from 4 KiB on instead of 512 KiB): what was acknowledged survives, and
/// the writes did go direct (or the node said why not).
#[test]
fn kill_9_with_direct_writes_keeps_every_acked_chunk() {
    if skip() {
        return;
    }
    let lab = kill_9_in_the_middle_of_writes(", direct_io_min_kib: 4");
    let mut direct = 0;
    wait_for(
        "a node's stats.json to count its chunk files written",
        Duration::from_secs(30),
        || {
            let written: Vec<(u64, u64)> = lab
                .nodes
                .iter()
                .filter_map(|i| {
                    let s = &lab.stats(*i)["store"];
                    Some((s["chunks_written"].as_u64()?, s["direct_writes"].as_u64()?))
                })
                .collect();
            direct = written.iter().map(|w| w.1).max().unwrap_or(0);
            written.iter().any(|w| w.0 > 0)
        },
    );
    if direct == 0 {
        // Only a file system that refuses O_DIRECT may write through the
        // cache, and the node says so.
        assert!(
            lab.nodes
                .iter()
                .any(|i| lab.log(*i).contains("refuses O_DIRECT")),
            "no direct writes and no node said why"
        );
        println!("the store's file system refuses O_DIRECT: the fallback ran");
    }
    println!("direct writes on the busiest node: {direct}");
}

fn kill_9_in_the_middle_of_writes(node_extra: &str) -> Lab {
    // Four nodes, R = 3: the put replaces the killed target and completes.
    let mut lab = Lab::with_node_extra(4, "chunk_size: 262144\nrate_mbps: 40", node_extra);
    let obj = random_file(lab.dir.path(), "big.bin", 40 * 262_144, 7);
    let mut put = Command::new("ip")
        .args(["netns", "exec", &lab.ns(CLIENT), &bin()])
        .args([
            "put",
            obj.to_str().unwrap(),
            "--name",
            "crash/big",
            "--transport",
            "ng-multicast",
            "--quiet",
            "--json",
            "--config",
        ])
        .arg(lab.config(CLIENT))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The victim: the first node whose stats say it has sent two PUT_ACKs
    // (so the first has left the node a turn of its loop ago), while the
    // put still runs. Chunk files on disk are not enough: a file is renamed
    // into place before its fsync and its PUT_ACK, and a node killed then
    // may have acknowledged nothing yet.
    let mut victim = 0;
    wait_for(
        "a node to send two PUT_ACKs",
        Duration::from_secs(60),
        || {
            victim = lab
                .nodes
                .iter()
                .copied()
                .find(|i| lab.stats(*i)["node"]["acks_sent"].as_u64() >= Some(2))
                .unwrap_or(0);
            victim != 0
        },
    );
    assert!(
        put.try_wait().unwrap().is_none(),
        "the put ended before the kill: the test would not test anything"
    );
    lab.kill(victim);
    let out = put.wait_with_output().unwrap();
    let report = json(&out);
    // Chunks the victim acknowledged: the put's placement names, per chunk,
    // the nodes that answered PUT_ACK stored.
    let acked = report["placement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ids| {
            ids.as_array()
                .unwrap()
                .iter()
                .any(|id| id.as_u64() == Some(victim as u64))
        })
        .count();
    assert!(acked >= 1, "the victim acknowledged nothing: {report}");

    // Restart: every chunk file verifies, and the victim still holds (at
    // least) everything it acknowledged, data and manifest.
    lab.start(victim);
    lab.wait_ready();
    let verified = verified_data(&lab.store(victim));
    let stat = json(&lab.client(&["stat", "crash/big", "--json"]));
    let mut ours: Vec<String> = stat["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    ours.extend(
        stat["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["manifest"].as_str().map(str::to_owned)),
    );
    let held = chunk_files(&lab.store(victim))
        .into_iter()
        .filter(|(id, _)| ours.contains(id))
        .count();
    println!(
        "victim node {victim}: acknowledged {acked} chunks, holds {held} of the object's after restart ({} data files verified)",
        verified.len()
    );
    assert!(
        held >= acked,
        "node {victim} acknowledged {acked} chunks but holds {held} after kill -9 and restart\n{}",
        lab.log(victim)
    );
    // And the object reads back whole, the restarted node among its holders.
    let back = lab.dir.path().join("back.bin");
    let o = lab.client(&["get", "crash/big", "-o", back.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&obj).unwrap());
    lab
}

/// A tmpfs of `size` mounted at `dir` (created), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        common::run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "subcast-crash-test",
            dir.to_str().unwrap(),
        ]);
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn a_full_filesystem_refuses_with_full_and_loses_nothing() {
    if skip() {
        return;
    }
    // Three nodes, R = 3: node 3 must take every chunk.
    let mut lab = Lab::new(3, "chunk_size: 1048576");
    lab.kill(3);
    let _ = std::fs::remove_dir_all(lab.store(3));
    let fs = Tmpfs::mount(&lab.store(3), "8m");
    lab.start(3);
    lab.wait_ready();

    let a = random_file(lab.dir.path(), "a.bin", 2 * 1_048_576, 11);
    let r = json(&lab.client(&[
        "put",
        a.to_str().unwrap(),
        "--name",
        "full/a",
        "--quiet",
        "--json",
    ]));
    assert_eq!(r["replicas"], 3, "{r}");
    let before = verified_data(&lab.store(3));
    assert_eq!(before.len(), 2, "node 3 holds both chunks of full/a");

    // Fill the filesystem behind the node's back: it still thinks it has
    // room, accepts, and the write fails with ENOSPC.
    let filler = fs.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0x5au8; 65536];
        while f.write_all(&block).is_ok() {}
        // Leave 256 KiB: no room for a 1 MiB chunk, but the node's
        // stats.json (in the store directory too) can still be written.
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(256 * 1024)).unwrap();
        let _ = f.sync_all();
    }
    let b = random_file(lab.dir.path(), "b.bin", 2 * 1_048_576, 12);
    // After PUT_ACK full the client asks again; node 3 now says "not now
    // (full), retry in 60 s": the put is stopped after 10 s (it would fail
    // after that minute for want of a third node).
    let o = Command::new("timeout")
        .args(["10", "ip", "netns", "exec", &lab.ns(CLIENT), &bin()])
        .args(["put", b.to_str().unwrap(), "--name", "full/b", "--quiet"])
        .arg("--config")
        .arg(lab.config(CLIENT))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a put needing node 3 succeeded although its disk is full: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Counted as `full` (PUT_ACK full after ENOSPC); stats.json is written
    // once a second.
    let t0 = Instant::now();
    while lab.stats(3)["node"]["refused_by_reason"]["full"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "node 3 counted no `full` refusal; the put said: {err}\nnode 3: {}\n{}",
            lab.stats(3),
            lab.log(3)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = lab.stats(3);
    println!(
        "full put refused: {}; node 3: refused_by_reason {}, not_now {}, store_failures {}",
        err.lines()
            .skip_while(|l| !l.starts_with("Caused by"))
            .nth(1)
            .unwrap_or("")
            .trim(),
        s["node"]["refused_by_reason"],
        s["node"]["not_now"],
        s["node"]["store_failures"]
    );
    assert!(
        s["node"]["refused_by_reason"]["full"].as_u64().unwrap_or(0) > 0,
        "node 3 did not refuse with `full`: {s}\n{}",
        lab.log(3)
    );

    // Nothing lost: node 3 is alive, its chunks still verify, full/a reads
    // back identical.
    assert!(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns(3), "ss", "-Hlun", "sport = :7412"])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false),
        "node 3 is gone: {}",
        lab.log(3)
    );
    let after = verified_data(&lab.store(3));
    for id in &before {
        assert!(after.contains(id), "node 3 lost chunk {id}");
    }
    let back = lab.dir.path().join("back.bin");
    let o = lab.client(&["get", "full/a", "-o", back.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&a).unwrap());

    // Room again: the same put succeeds.
    std::fs::remove_file(&filler).unwrap();
    // The node reads its free space again before each stats.json write
    // (once a second): two writes after the removal, and it has seen it.
    let stats = lab.store(3).join("stats.json");
    let mtime = || std::fs::metadata(&stats).and_then(|m| m.modified()).ok();
    for _ in 0..2 {
        let m0 = mtime();
        wait_for("node 3 to write its stats", Duration::from_secs(10), || {
            mtime() != m0
        });
    }
    let o = lab.client(&[
        "put",
        b.to_str().unwrap(),
        "--name",
        "full/b",
        "--quiet",
        "--json",
    ]);
    assert!(
        o.status.success(),
        "put after freeing space: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    lab.kill(3);
    drop(fs);
}
