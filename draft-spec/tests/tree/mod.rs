//! What the dissector's tree must show for a datagram (from a vector's
//! JSON or from the Rust decoder), what it does show (tshark's PDML), and
//! the comparison of the two.

use serde_json::Value;
use std::collections::BTreeMap;

/// Fields whose value the test compares with the JSON (after `subcast.`).
pub const DOMAIN: &[&str] = &[
    "type",
    "key_id",
    "sender_id",
    "sequence",
    "timestamp_us",
    "txid",
    "switch_id",
    "backend",
    "port_count",
    "table_capacity",
    "instance",
    "software_version",
    "installed_groups",
    "uptime_s",
    "vlan",
    "parent",
    "group",
    "lifetime_ms",
    "member_form",
    "member_mac",
    "member_ipv6",
    "member_ipv4",
    "bitmap",
    "nak_reason",
    "detail",
    "op",
    "request_id",
    "grant_status",
    "lease_id",
    "expires_at_ms",
    "reused",
    "released",
    "chunk_id",
    "size",
    "kind",
    "replicas",
    "bid_status",
    "not_now_reason",
    "earliest_start_us",
    "queue_depth",
    "free_bytes",
    "retry_after_ms",
    "datagram_payload",
    "target",
    "index",
    "total",
    "payload",
    "wrapped_key",
    "ack_status",
    "range_start",
    "range_end",
    "offer_status",
    "name_hash",
    "object_version",
    "writer",
    "manifest_id",
    // Envelope fields checked against the bytes rather than the JSON.
    "magic",
    "version",
    "flags",
    "body_len",
    "tag",
    "receiver_id",
];

/// Wire-only fields (lengths, counts, codes whose meaning is shown by a
/// DOMAIN field), the refusal kind and the expert infos.
pub const STRUCTURAL: &[&str] = &[
    "str_len",
    "member_count",
    "member_type",
    "bitmap_bits",
    "item_count",
    "grant_flags",
    "unused",
    "release_status",
    "target_count",
    "key_count",
    "payload_len",
    "range_count",
    "version_count",
    "tag_count",
    "error",
    "malformed",
    "internal_error",
];

/// Enumerations: compared by the name the dissector shows.
const ENUMS: &[&str] = &[
    "type",
    "backend",
    "nak_reason",
    "grant_status",
    "op",
    "member_form",
    "kind",
    "bid_status",
    "not_now_reason",
    "ack_status",
    "offer_status",
];

/// Octet strings, and strings (Wireshark shows a string up to its first
/// NUL and escapes control characters): compared as hex.
const HEX: &[&str] = &[
    "software_version",
    "detail",
    "bitmap",
    "chunk_id",
    "name_hash",
    "manifest_id",
    "payload",
    "wrapped_key",
    "tag",
];

#[derive(Debug, Clone)]
pub struct Field {
    name: String,
    show: String,
    showname: String,
    value: String,
}

#[derive(Debug, Default)]
pub struct Packet {
    /// Fields named `subcast.*`, in tree order.
    pub subcast: Vec<Field>,
    /// Every field and protocol name in the packet (expert infos, Lua errors).
    names: Vec<String>,
}

/// The packets of tshark's PDML output, parsed one `<packet>` at a time
/// (the whole document of thousands of packets would be a large tree).
pub fn pdml_packets(xml: &str) -> Vec<Packet> {
    xml.split("<packet>")
        .skip(1)
        .map(|chunk| {
            let end = chunk.find("</packet>").expect("complete <packet>");
            let one = format!("<packet>{}</packet>", &chunk[..end]);
            let doc = roxmltree::Document::parse(&one).expect("tshark writes valid PDML");
            let mut pkt = Packet::default();
            for n in doc.descendants().filter(|n| n.is_element()) {
                let Some(name) = n.attribute("name") else {
                    continue;
                };
                pkt.names.push(name.to_owned());
                if name.starts_with("subcast.") && n.has_tag_name("field") {
                    let a = |k| n.attribute(k).unwrap_or_default().to_owned();
                    pkt.subcast.push(Field {
                        name: name.to_owned(),
                        show: a("show"),
                        showname: a("showname"),
                        value: a("value"),
                    });
                }
            }
            pkt
        })
        .collect()
}

/// The name of an enumeration field: "Backend: linux-bridge (1)" -> "linux-bridge".
fn enum_name(showname: &str) -> String {
    let v = showname.split_once(": ").map_or(showname, |(_, v)| v);
    v.rsplit_once(" (").map_or(v, |(n, _)| n).to_owned()
}

/// Short field name -> values in tree order.
pub type Want = BTreeMap<String, Vec<String>>;

fn push(w: &mut Want, name: &str, v: impl Into<String>) {
    assert!(DOMAIN.contains(&name), "test maps to unknown field {name}");
    w.entry(name.to_owned()).or_default().push(v.into());
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        other => other.to_string(),
    }
}

fn hex_of_array(v: &Value) -> String {
    v.as_array()
        .expect("octets as an array")
        .iter()
        .map(|b| format!("{:02x}", b.as_u64().expect("octet")))
        .collect()
}

fn member(w: &mut Want, m: &Value) {
    for (k, v) in m.as_object().expect("member object") {
        push(w, &format!("member_{k}"), scalar(v));
    }
}

/// One key of a message (or of a nested object) as dissector fields.
fn json_field(w: &mut Want, ty: &str, key: &str, v: &Value) {
    match (key, v) {
        ("members", Value::Object(forms)) => {
            for (form, inner) in forms {
                push(w, "member_form", form.as_str());
                match form.as_str() {
                    "list" => inner.as_array().unwrap().iter().for_each(|m| member(w, m)),
                    _ => push(w, "bitmap", scalar(&inner["bytes"])),
                }
            }
        }
        ("targets", Value::Array(a)) if ty == "RENDEZVOUS_REQUEST" => {
            a.iter().for_each(|m| member(w, m))
        }
        ("targets", Value::Array(a)) => a.iter().for_each(|t| push(w, "target", scalar(t))),
        ("port_counts", Value::Array(a)) => a.iter().for_each(|c| push(w, "port_count", scalar(c))),
        ("outcome", Value::Object(o)) => {
            for (tag, inner) in o {
                if tag == "granted" {
                    push(w, "grant_status", "granted");
                }
                json_object(w, ty, inner);
            }
        }
        ("items" | "ranges" | "versions", Value::Array(a)) => {
            a.iter().for_each(|item| json_object(w, ty, item))
        }
        ("chunk_id" | "name_hash" | "manifest_id" | "payload", a) => push(w, key, hex_of_array(a)),
        // PUT_ACCEPT's wrapped keys (none unless the transfer is keyed).
        ("keys", Value::Array(a)) => a
            .iter()
            .for_each(|k| push(w, "wrapped_key", hex_of_array(k))),
        ("start" | "end", n) => push(w, &format!("range_{key}"), scalar(n)),
        ("version", n) => push(w, "object_version", scalar(n)),
        ("reason", s) => {
            let name = match ty {
                "NAK" => "nak_reason",
                "PUT_BID" => "not_now_reason",
                _ => "grant_status",
            };
            push(w, name, scalar(s))
        }
        ("status", s) => {
            let name = match ty {
                "PUT_BID" => "bid_status",
                "PUT_ACK" => "ack_status",
                _ => "offer_status",
            };
            push(w, name, scalar(s))
        }
        ("software_version" | "detail", Value::String(s)) => push(w, key, hex::encode(s)),
        (_, v) => push(w, key, scalar(v)),
    }
}

fn json_object(w: &mut Want, ty: &str, v: &Value) {
    for (k, val) in v.as_object().expect("object") {
        if k != "type" {
            json_field(w, ty, k, val);
        }
    }
}

/// Whether a datagram is a Replicast one (types 0x40-0x5f: tag list).
pub fn is_replicast(bytes: &[u8]) -> bool {
    bytes.get(3).is_some_and(|t| (0x40..=0x5f).contains(t))
}

/// Octets after the body: the 32-octet tag, or a Replicast tag list.
pub fn trailer_len(bytes: &[u8]) -> usize {
    if is_replicast(bytes) {
        bytes.len() - 32 - usize::from(u16::from_be_bytes([bytes[6], bytes[7]]))
    } else {
        32
    }
}

/// The fields a well-formed datagram must show: header, body, tag(s).
pub fn want_decoded(bytes: &[u8], origin: &Value, message: &Value) -> Want {
    let ty = message["type"].as_str().expect("message type");
    let trailer = trailer_len(bytes);
    let mut w = Want::new();
    push(&mut w, "magic", "0x5343");
    push(&mut w, "version", "1");
    push(&mut w, "type", ty);
    push(
        &mut w,
        "flags",
        if is_replicast(bytes) {
            "0x0001"
        } else {
            "0x0000"
        },
    );
    push(&mut w, "body_len", (bytes.len() - 32 - trailer).to_string());
    for k in ["key_id", "sender_id", "sequence", "timestamp_us"] {
        push(&mut w, k, scalar(&origin[k]));
    }
    json_object(&mut w, ty, message);
    let t = &bytes[bytes.len() - trailer..];
    if is_replicast(bytes) {
        for e in t[1..].chunks(20) {
            push(
                &mut w,
                "receiver_id",
                u32::from_be_bytes([e[0], e[1], e[2], e[3]]).to_string(),
            );
            push(&mut w, "tag", hex::encode(&e[4..]));
        }
    } else {
        push(&mut w, "tag", hex::encode(t));
    }
    w
}

/// What the dissector shows, in the same shape as [`Want`].
fn shown(pkt: &Packet) -> Want {
    let mut w = Want::new();
    for f in &pkt.subcast {
        let short = &f.name["subcast.".len()..];
        if !DOMAIN.contains(&short) {
            continue;
        }
        let v = if ENUMS.contains(&short) {
            enum_name(&f.showname)
        } else if HEX.contains(&short) {
            f.value.clone()
        } else {
            f.show.clone()
        };
        w.entry(short.to_owned()).or_default().push(v);
    }
    w
}

/// The Rust decoder's verdict: the origin and message as JSON, or the kind.
pub fn rust_decode(bytes: &[u8]) -> Result<(Value, Value), &'static str> {
    let (header, message) = if is_replicast(bytes) {
        let d = subcast_proto::replicast::decode(bytes).map_err(|e| e.kind())?;
        (d.header, serde_json::to_value(&d.message).unwrap())
    } else {
        let d = subcast_proto::decode(bytes).map_err(|e| e.kind())?;
        (d.header, serde_json::to_value(&d.message).unwrap())
    };
    Ok((serde_json::to_value(header).unwrap(), message))
}

/// The Rust verdict on a datagram that starts as keyed DATA (0x47) or
/// untagged DATA (0x4e) does:
/// the fields it must show, or the refusal kind; `None` for any other
/// datagram (as `KeyedData::parse`, which a storage node runs first).
pub fn rust_keyed(bytes: &[u8]) -> Option<Result<Want, &'static str>> {
    use subcast_proto::replicast::{KeyedData, transfer::KEYED_TAG_LEN};
    let d = match KeyedData::parse(bytes) {
        Ok(None) => return None,
        Ok(Some(d)) => d,
        Err(e) => return Some(Err(e.kind())),
    };
    let mut w = Want::new();
    push(&mut w, "magic", "0x5343");
    push(&mut w, "version", "1");
    let ty = if d.is_tagged() {
        "KEYED_DATA"
    } else {
        "UNTAGGED_DATA"
    };
    push(&mut w, "type", ty);
    push(&mut w, "txid", d.txid.to_string());
    push(&mut w, "index", d.index.to_string());
    push(&mut w, "payload", hex::encode(d.payload));
    if d.is_tagged() {
        push(
            &mut w,
            "tag",
            hex::encode(&bytes[bytes.len() - KEYED_TAG_LEN..]),
        );
    }
    Some(Ok(w))
}

/// What one datagram must look like in the tree.
#[derive(Debug)]
pub enum Expect {
    Decoded(Want),
    Refused(String),
}

/// Problems with one packet, empty if it is as expected.
pub fn check(pkt: &Packet, expect: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    for n in &pkt.names {
        if n == "_ws.lua.error" || n == "subcast.internal_error" {
            bad.push(format!("dissector error ({n})"));
        }
    }
    for f in &pkt.subcast {
        let short = &f.name["subcast.".len()..];
        if !DOMAIN.contains(&short) && !STRUCTURAL.contains(&short) {
            bad.push(format!(
                "field {} is in neither DOMAIN nor STRUCTURAL",
                f.name
            ));
        }
    }
    let errors: Vec<&str> = pkt
        .subcast
        .iter()
        .filter(|f| f.name == "subcast.error")
        .map(|f| f.show.as_str())
        .collect();
    let malformed = pkt.names.iter().any(|n| n == "subcast.malformed")
        && pkt.names.iter().any(|n| n == "_ws.malformed");
    match expect {
        Expect::Decoded(want) => {
            if pkt
                .names
                .iter()
                .any(|n| n == "_ws.expert" || n == "_ws.malformed")
            {
                bad.push(format!("expert info on a well-formed datagram: {errors:?}"));
            }
            let got = shown(pkt);
            let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            for k in keys {
                if want.get(k) != got.get(k) {
                    bad.push(format!(
                        "subcast.{k}: want {:?}, shown {:?}",
                        want.get(k),
                        got.get(k)
                    ));
                }
            }
        }
        Expect::Refused(kind) => {
            if errors != [kind.as_str()] || !malformed {
                bad.push(format!(
                    "want malformed {kind}, shown errors {errors:?} (expert+malformed: {malformed})"
                ));
            }
        }
    }
    bad
}
