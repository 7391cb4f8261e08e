//! The snapshots scenario (issue 16): storage nodes on the topology, and
//! from one host: put v1, snapshot s1, put v2, delete, snapshot s2; s1
//! gives v1, s2 has no object, the latest read says deleted; a clone of
//! s1 is written to and the original's versions stay as they were; the
//! chunks the clone shares with the original are stored once (counted as
//! chunk files in the nodes' store directories, outside the processes).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::objects::first_lines;
use crate::putget::run_timeout;
use crate::scenario::Running;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The scenario on a running lab (controller and agents up).
pub fn snapshots(r: &mut Running, sender: &str) -> Result<Value> {
    r.stack.start_nodes(&r.lab, &r.bins, sender)?;
    let (lab, stack) = (&r.lab, &r.stack);
    let client = stack.client_config(lab, sender)?.display().to_string();
    let node = r.bins.node.display().to_string();
    let ns = lab.host(sender).netns.clone();
    let dir = lab.workdir().to_path_buf();
    let t0 = Instant::now();
    // (ok, stdout, stderr) of `subcast-node ARGS` from the sender.
    let cmd = |args: &[&str]| -> Result<(bool, String, String)> {
        let mut a = vec![node.as_str(), "--config", client.as_str()];
        a.extend(args);
        run_timeout(lab, &ns, &a, TIMEOUT)
    };
    let must = |args: &[&str]| -> Result<String> {
        let (ok, out, err) = cmd(args)?;
        if !ok {
            bail!("subcast-node {args:?} failed: {}", first_lines(&err));
        }
        Ok(out)
    };
    let tr = ["--transport", "rendezvous"];
    let mut files = Vec::new();
    for (i, size) in [(1, 600_000), (2, 300_000), (3, 200_000)] {
        let p = dir.join(format!("snap-v{i}.bin"));
        std::fs::write(&p, crate::attack_setup::random_bytes(size)?)?;
        files.push(p.display().to_string());
    }
    let back = dir.join("snap-back.bin").display().to_string();
    let same = |f: &str| -> Result<bool> { Ok(std::fs::read(&back)? == std::fs::read(f)?) };
    let put = |f: &str, name: &str| must(&["put", f, "--name", name, "-q", tr[0], tr[1]]);
    let mut checks = serde_json::Map::new();

    put(&files[0], "lab/obj")?;
    must(&["snapshot", "create", "lab", "s1", tr[0], tr[1]])?;
    put(&files[1], "lab/obj")?;
    must(&["delete", "lab/obj", tr[0], tr[1]])?;
    must(&["snapshot", "create", "lab", "s2", tr[0], tr[1]])?;

    must(&["get", "lab/obj", "--snapshot", "s1", "-o", &back, "-q"])?;
    checks.insert("s1_gives_v1".into(), json!(same(&files[0])?));
    let (ok, _, err) = cmd(&["get", "lab/obj", "--snapshot", "s2", "-o", &back])?;
    checks.insert(
        "s2_has_no_object".into(),
        json!(!ok && err.contains("not in snapshot")),
    );
    let (ok, _, err) = cmd(&["get", "lab/obj", "-o", &back])?;
    checks.insert(
        "latest_says_deleted".into(),
        json!(!ok && err.contains("was deleted")),
    );

    let before = must(&["ls", "lab/obj", "--json"])?;
    must(&["clone", "lab/obj@s1", "clone/obj", tr[0], tr[1]])?;
    must(&["get", "clone/obj", "-o", &back, "-q"])?;
    checks.insert("clone_reads_v1".into(), json!(same(&files[0])?));
    put(&files[2], "clone/obj")?;
    must(&["get", "clone/obj", "-o", &back, "-q"])?;
    checks.insert("clone_write_reads_back".into(), json!(same(&files[2])?));
    let after = must(&["ls", "lab/obj", "--json"])?;
    let (b, a): (Value, Value) = (
        serde_json::from_str(&before)?,
        serde_json::from_str(&after)?,
    );
    checks.insert("original_versions_unchanged".into(), json!(a == b));
    must(&["get", "lab/obj", "--snapshot", "s1", "-o", &back, "-q"])?;
    checks.insert("original_s1_still_v1".into(), json!(same(&files[0])?));

    // The chunks of the clone's first version are the original's v1
    // chunks, each a file on R = 3 nodes (stored once, not per name).
    let stat = |name: &str| -> Result<Vec<String>> {
        let s: Value = serde_json::from_str(&must(&["stat", name, "--version", "1", "--json"])?)?;
        Ok(s["chunks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    };
    let shared = stat("clone/obj")?;
    checks.insert(
        "clone_shares_chunks".into(),
        json!(!shared.is_empty() && shared == stat("lab/obj")?),
    );
    let holders = crate::stored::replicas(&stack.dir, stack.nodes.keys());
    let copies: Vec<usize> = shared
        .iter()
        .map(|id| holders.get(id).map_or(0, |(_, h)| h.len()))
        .collect();
    checks.insert(
        "shared_chunks_stored_once".into(),
        json!(copies.iter().all(|c| *c == 3)),
    );
    let ok = checks.values().all(|v| *v == json!(true));
    Ok(json!({
        "ok": ok,
        "scenario": "snapshots",
        "sender": sender,
        "checks": checks,
        "shared_chunk_files": copies,
        "seconds": t0.elapsed().as_secs_f64(),
    }))
}
