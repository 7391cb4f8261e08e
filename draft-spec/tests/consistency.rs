//! The draft, its vector files and the code agree:
//! - the committed vector files are what the generator writes today;
//! - Appendix A of the draft is generated from them;
//! - every field table of the draft (`{: #layout-TYPE}`) gives offsets and
//!   lengths at which the encoded vectors really carry those fields.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use subcast_draft_spec::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn draft() -> String {
    std::fs::read_to_string(dir().join(DRAFT_FILE)).expect("draft readable")
}

#[test]
fn vector_files_match_generator() {
    let vectors = vectors();
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(dir().join("vectors"))
        .expect("vectors dir")
        .map(|e| e.expect("entry").path())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk.len(), vectors.len(), "run subcast-gen-vectors");
    for (path, v) in on_disk.iter().zip(&vectors) {
        let disk: Vector =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
        assert_eq!(
            &disk,
            v,
            "{} is stale: run subcast-gen-vectors",
            path.display()
        );
    }
}

#[test]
fn appendix_matches_vectors() {
    let d = draft();
    let current = current_appendix(&d).expect("markers present");
    let expected = format!("\n\n{}", appendix(&vectors()));
    assert_eq!(
        current, expected,
        "Appendix A is stale: run subcast-gen-vectors"
    );
}

/// Field tables by layout name: (field, offset, octets or None for var).
fn layouts(draft: &str) -> BTreeMap<String, Vec<(String, usize, Option<usize>)>> {
    let mut out = BTreeMap::new();
    let mut rows = Vec::new();
    for line in draft.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if line.trim_start().starts_with('|')
            && cells.len() == 3
            && let Ok(off) = cells[1].parse::<usize>()
        {
            let len = cells[2].parse::<usize>().ok();
            assert!(len.is_some() || cells[2] == "var", "bad length cell {line}");
            rows.push((cells[0].to_string(), off, len));
            continue;
        }
        if let Some(rest) = line.trim().strip_prefix("{: #layout-") {
            let name = rest.split_whitespace().next().expect("name").to_string();
            out.insert(name, std::mem::take(&mut rows));
        } else if !line.trim_start().starts_with('|') {
            rows.clear();
        }
    }
    out
}

/// Looks a field up anywhere in a JSON message.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

fn expected_bytes(v: &Value, len: usize) -> Option<Vec<u8>> {
    if let Some(n) = v.as_u64() {
        let b = n.to_be_bytes();
        assert!(
            b[..8 - len.min(8)].iter().all(|x| *x == 0),
            "{n} fits {len}"
        );
        return Some(b[8 - len..].to_vec());
    }
    if let Some(a) = v.as_array()
        && a.len() == len
    {
        return a.iter().map(|x| x.as_u64().map(|n| n as u8)).collect();
    }
    if let Some(s) = v.as_str()
        && let Ok(a) = s.parse::<Ipv6Addr>()
    {
        return Some(a.octets().to_vec());
    }
    None
}

#[test]
fn field_tables_match_encoding() {
    let tables = layouts(&draft());
    for name in [
        "header",
        "HELLO",
        "HEARTBEAT",
        "HELLO_ACK",
        "SET_SUBSET",
        "CLEAR",
        "ACK",
        "NAK",
        "BATCH",
        "BATCH-set-item",
        "BATCH_ACK",
        "RENDEZVOUS_REQUEST",
        "RENDEZVOUS_GRANT",
        "RENDEZVOUS_RELEASE",
        "RELEASE_ACK",
        "bitmap",
        "PUT_PROPOSAL",
        "PUT_BID",
        "PUT_ACCEPT",
        "PUT_ACCEPT-keys",
        "DATA",
        "KEYED_DATA",
        "UNTAGGED_DATA",
        "PUT_ACK",
        "NACK",
        "PUT_READY",
        "GET_REQUEST",
        "GET_OFFER",
        "GET_FETCH",
        "MANIFEST_QUERY",
        "MANIFEST_OFFER",
        "tag-list",
        "tag-entry",
    ] {
        let t = tables
            .get(name)
            .unwrap_or_else(|| panic!("no table {name}"));
        let mut next = 0;
        for (field, off, len) in t {
            assert_eq!(*off, next, "{name}.{field}: offsets must be contiguous");
            next = off + len.unwrap_or(0);
        }
    }
    let mut checked = 0;
    for v in vectors() {
        let (name, hex_bytes, origin, msg) = match &v {
            Vector::Valid(v) => (
                &v.name,
                &v.bytes,
                v.origin,
                serde_json::to_value(&v.message),
            ),
            Vector::Replicast(v) => (
                &v.name,
                &v.bytes,
                v.origin,
                serde_json::to_value(&v.message),
            ),
            Vector::Invalid(_) => continue,
            Vector::Keyed(k) => {
                checked += check_keyed_layout(&tables, k);
                continue;
            }
        };
        let bytes = hex::decode(hex_bytes).expect("hex");
        let msg = msg.expect("json");
        let ty = msg["type"].as_str().expect("type").to_string();
        let body_len = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
        // Push and rendezvous: Flags 0 and a 32-octet tag. Replicast:
        // TAG_LIST and a tag list (count, then receiver id and tag each).
        let flags = match &v {
            Vector::Replicast(r) => {
                let list = &bytes[32 + body_len..];
                let entries = tables.get("tag-entry").expect("tag-entry table");
                let count = tables.get("tag-list").expect("tag-list table");
                assert_eq!(count[0], ("count".to_string(), 0, Some(1)), "tag-list");
                assert_eq!(usize::from(list[0]), r.receivers.len(), "{name}: count");
                let entry_len: usize = entries.iter().filter_map(|e| e.2).sum();
                assert_eq!(entry_len, 20, "tag-entry: 20 octets");
                assert_eq!(list.len(), 1 + entry_len * r.receivers.len(), "{name}");
                for (i, want) in r.receivers.iter().enumerate() {
                    let e = &list[1 + i * entry_len..];
                    let (_, off, len) = entries
                        .iter()
                        .find(|e| e.0 == "receiver_id")
                        .expect("receiver_id row");
                    assert_eq!(
                        e[*off..off + len.expect("fixed")],
                        want.to_be_bytes(),
                        "{name}"
                    );
                    checked += 1;
                }
                1
            }
            _ => {
                assert_eq!(bytes.len(), 64 + body_len, "{name}: one 32-octet tag");
                0
            }
        };
        let header = serde_json::json!({
            "magic": 0x5343, "version": 1, "type": bytes[3], "flags": flags,
            "body_len": body_len, "key_id": origin.key_id,
            "sender_id": origin.sender_id, "sequence": origin.sequence,
            "timestamp_us": origin.timestamp_us,
        });
        let body = &bytes[32..32 + body_len];
        if let Vector::Replicast(r) = &v
            && let subcast_proto::replicast::ReplicastMessage::PutAccept(a) = &r.message
            && !a.keys.is_empty()
        {
            checked += check_accept_keys(&tables, name, body, a);
        }
        for (table, data, values) in [("header", &bytes[..32], &header), (ty.as_str(), body, &msg)]
        {
            let rows = &tables[table];
            let fixed: usize = rows.iter().filter_map(|r| r.2).sum();
            assert!(
                fixed <= data.len(),
                "{table}: fixed part longer than {}",
                name
            );
            if rows.iter().all(|r| r.2.is_some()) {
                assert_eq!(fixed, data.len(), "{table}: length of {}", name);
            }
            for (field, off, len) in rows {
                let Some(len) = len else { continue };
                if let Some(exp) = find(values, field).and_then(|x| expected_bytes(x, *len)) {
                    assert_eq!(
                        &data[*off..off + len],
                        exp.as_slice(),
                        "{}: field {table}.{field} at offset {off}",
                        name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 120, "only {checked} fields checked");
}

type Tables = BTreeMap<String, Vec<(String, usize, Option<usize>)>>;

/// A keyed DATA vector against the KEYED_DATA table (untagged DATA: the
/// UNTAGGED_DATA table): fixed fields at their offsets, the payload up to
/// the 8-octet tag (untagged: to the end). Returns the fields checked.
fn check_keyed_layout(tables: &Tables, k: &KeyedVector) -> usize {
    let bytes = hex::decode(&k.bytes).expect("hex");
    let tagged = bytes[3] == 0x47;
    let (table, tag_len) = if tagged {
        ("KEYED_DATA", 8)
    } else {
        ("UNTAGGED_DATA", 0)
    };
    let values = serde_json::json!({
        "magic": 0x5343, "version": 1, "type": bytes[3],
        "txid": k.txid, "index": k.index,
    });
    let rows = &tables[table];
    let mut checked = 0;
    for (field, off, len) in rows {
        match len {
            Some(len) => {
                let exp = expected_bytes(&values[field.as_str()], *len)
                    .unwrap_or_else(|| panic!("{table}.{field}: no value"));
                assert_eq!(
                    &bytes[*off..off + len],
                    exp.as_slice(),
                    "{}: {field}",
                    k.name
                );
            }
            None => {
                assert_eq!(field, "payload", "{table}: only the payload varies");
                assert_eq!(
                    hex::encode(&bytes[*off..bytes.len() - tag_len]),
                    k.payload,
                    "{}: payload up to the tag",
                    k.name
                );
                assert_eq!(
                    hex::encode(&bytes[bytes.len() - tag_len..]),
                    k.tag,
                    "{}",
                    k.name
                );
            }
        }
        checked += 1;
    }
    checked
}

/// The wrapped-key section of a PUT_ACCEPT body, after its targets, against
/// the PUT_ACCEPT-keys table.
fn check_accept_keys(
    tables: &Tables,
    name: &str,
    body: &[u8],
    a: &subcast_proto::replicast::PutAccept,
) -> usize {
    let (_, targets_at, _) = tables["PUT_ACCEPT"]
        .iter()
        .find(|r| r.0 == "targets")
        .expect("targets row");
    let section = &body[targets_at + 4 * a.targets.len()..];
    let rows = &tables["PUT_ACCEPT-keys"];
    assert_eq!(
        rows[0],
        ("key_count".to_string(), 0, Some(1)),
        "PUT_ACCEPT-keys"
    );
    assert_eq!(
        rows[1],
        ("wrapped_keys".to_string(), 1, None),
        "PUT_ACCEPT-keys"
    );
    assert_eq!(
        usize::from(section[0]),
        a.targets.len(),
        "{name}: key count"
    );
    assert_eq!(
        section.len(),
        1 + 32 * a.keys.len(),
        "{name}: section length"
    );
    for (i, k) in a.keys.iter().enumerate() {
        assert_eq!(
            &section[1 + 32 * i..33 + 32 * i],
            k,
            "{name}: wrapped key {i}"
        );
    }
    1 + a.keys.len()
}

/// A description is a paragraph of Appendix A: a `|` in it would make
/// kramdown-rfc read a table (render.sh then fails in CI).
#[test]
fn descriptions_render_as_paragraphs() {
    for v in vectors() {
        let d = match &v {
            Vector::Valid(x) => &x.description,
            Vector::Replicast(x) => &x.description,
            Vector::Invalid(x) => &x.description,
            Vector::Keyed(x) => &x.description,
        };
        assert!(!d.contains('|'), "{}: no | in a description", v.name());
    }
}
