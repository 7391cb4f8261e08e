//! Where each chunk is stored, read from the storage nodes' store directories
//! (outside the node processes): every regular file named by a 64-hex-digit chunk
//! id under `data/` or `manifests/` of `<lab dir>/store-<HOST>/` (`tmp/` and
//! `quarantine/` are not stored chunks).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

fn is_chunk_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn walk(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() && is_chunk_id(&name) {
            out.push(name);
        }
    }
}

/// Chunk id -> (kind, hosts holding it), for the stores of `hosts`.
pub fn replicas<'a>(
    lab_dir: &Path,
    hosts: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, (&'static str, Vec<String>)> {
    let mut out: BTreeMap<String, (&'static str, Vec<String>)> = BTreeMap::new();
    for h in hosts {
        let store = lab_dir.join(format!("store-{h}"));
        for (sub, kind) in [("data", "data"), ("manifests", "manifest")] {
            let mut ids = Vec::new();
            walk(&store.join(sub), &mut ids);
            for id in ids {
                let e = out.entry(id).or_insert((kind, Vec::new()));
                if !e.1.contains(h) {
                    e.1.push(h.clone());
                }
            }
        }
    }
    out
}

/// The report part: every chunk and its holders, and whether each is on exactly
/// `r` nodes and there are `want_data` data chunks and at least one manifest.
pub fn report(
    map: &BTreeMap<String, (&'static str, Vec<String>)>,
    r: usize,
    want_data: usize,
) -> (Value, bool) {
    let data = map.values().filter(|(k, _)| *k == "data").count();
    let manifests = map.values().filter(|(k, _)| *k == "manifest").count();
    let bad: Vec<String> = map
        .iter()
        .filter(|(_, (_, h))| h.len() != r)
        .map(|(id, (k, h))| format!("{k} {}: {} copies", &id[..12], h.len()))
        .collect();
    let ok = bad.is_empty() && data == want_data && manifests >= 1;
    let chunks: serde_json::Map<String, Value> = map
        .iter()
        .map(|(id, (k, h))| (id.clone(), json!({"kind": k, "holders": h})))
        .collect();
    (
        json!({
            "ok": ok, "replicas": r, "data_chunks": data, "expected_data_chunks": want_data,
            "manifests": manifests, "not_exactly_r": bad, "chunks": chunks,
            "how": "chunk files counted in each node's store directory (data/, manifests/), outside the node processes",
        }),
        ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_copies_per_chunk() {
        let dir = std::env::temp_dir().join(format!("stored-test-{}", std::process::id()));
        let id1 = "ab".repeat(32);
        let id2 = "cd".repeat(32);
        for (h, ids) in [
            ("X1", vec![&id1, &id2]),
            ("X3", vec![&id1]),
            ("X4", vec![&id1]),
        ] {
            for id in ids {
                let d = dir.join(format!("store-{h}/data/{}", &id[..2]));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(id), b"x").unwrap();
            }
            let m = dir.join(format!("store-{h}/manifests"));
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("ef".repeat(32)), b"m").unwrap();
            std::fs::create_dir_all(dir.join(format!("store-{h}/tmp"))).unwrap();
            std::fs::write(dir.join(format!("store-{h}/tmp/partial")), b"p").unwrap();
        }
        let hosts: Vec<String> = ["X1", "X3", "X4"].iter().map(|s| s.to_string()).collect();
        let map = replicas(&dir, &hosts);
        assert_eq!(map.len(), 3);
        assert_eq!(map[&id1].1.len(), 3);
        let (v, ok) = report(&map, 3, 2);
        assert!(!ok, "{v}");
        assert_eq!(v["not_exactly_r"].as_array().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
