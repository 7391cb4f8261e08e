//! The Wireshark dissector (`wireshark/subcast.lua`) run by tshark on pcaps
//! written from the test vectors:
//! - every vector decodes to the fields of its JSON (`message` and `origin`),
//!   compared field by field in the PDML output;
//! - refused vectors show as malformed with the vector's `error` kind, never
//!   as a Lua error. Vectors refused for authentication (bad-mac, replay,
//!   stale) are well-formed on the wire and the dissector, which has no key
//!   and no history, shows them normally: their fields are compared with
//!   what the Rust decoder reads from the same bytes;
//! - thousands of mutants of the vectors (truncated bodies, extended
//!   bodies, changed octets) are refused with the same kind as the Rust
//!   decoder (`subcast_proto::decode`), or decoded when it accepts them;
//! - on a port other than 7410-7412 the heuristic finds subcast datagrams
//!   and leaves other UDP alone.
//!
//! Needs tshark (Debian's, Lua enabled); skipped without it unless
//! SUBCAST_LABS_REQUIRED is set.

mod pcap;
mod tree;
mod tshark;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pcap::{L2_L4, frame, port_for, write_pcap};
use tree::{Expect, check, pdml_packets, rust_decode, rust_keyed, want_decoded};
use tshark::Scratch;

fn vector_files() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("vectors directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

const DECODE_KINDS: &[&str] = &[
    "truncated",
    "bad-magic",
    "unsupported-version",
    "unknown-type",
    "length-mismatch",
    "too-long",
    "invalid-field",
    "trailing-bytes",
];

/// What the tree must show for a vector file.
fn expect_vector(v: &Value, bytes: &[u8]) -> Expect {
    // Keyed DATA: the dissector has no transfer key, so the bad-tag one
    // shows like the others.
    if v["kind"] == "keyed" {
        return match rust_keyed(bytes) {
            Some(Ok(w)) => Expect::Decoded(w),
            other => panic!("a keyed vector parses as keyed DATA: {other:?}"),
        };
    }
    if let Some(message) = v.get("message") {
        return Expect::Decoded(want_decoded(bytes, &v["origin"], message));
    }
    let error = v["error"]
        .as_str()
        .expect("an invalid vector names its error");
    if DECODE_KINDS.contains(&error) {
        return Expect::Refused(error.to_owned());
    }
    // bad-mac, replay, stale: refused only by a receiver holding the key and
    // the sender's history; on the wire the datagram is well-formed.
    let (header, message) = rust_decode(bytes).expect("an authentication refusal decodes");
    Expect::Decoded(want_decoded(bytes, &header, &message))
}

/// One frame of a test pcap and what its tree must show (`None`: not
/// claimed by the subcast dissector at all).
struct Case {
    what: String,
    frame: Vec<u8>,
    expect: Option<Expect>,
}

impl Case {
    /// A datagram to its usual port, expected as the Rust decoder reads it.
    fn decoder_says(what: String, bytes: &[u8]) -> Case {
        let expect = match rust_keyed(bytes) {
            Some(Ok(w)) => Expect::Decoded(w),
            Some(Err(kind)) => Expect::Refused(kind.to_owned()),
            None => match rust_decode(bytes) {
                Ok((header, message)) => Expect::Decoded(want_decoded(bytes, &header, &message)),
                Err(kind) => Expect::Refused(kind.to_owned()),
            },
        };
        Case {
            what,
            frame: frame(7411, port_for(bytes), bytes),
            expect: Some(expect),
        }
    }
}

/// Writes the cases to a pcap, runs tshark with the dissector (PDML) and
/// returns the cases that do not show as expected, with the problems.
fn run_cases(tshark: &Path, name: &str, cases: &[Case]) -> Vec<(String, Vec<String>)> {
    let dir = Scratch::new(name);
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.clone()).collect();
    let pcap = write_pcap(&dir.0, "cases.pcap", &frames);
    tshark::keep(&pcap, name);
    let packets = pdml_packets(&tshark::run(tshark, &pcap, &["-T", "pdml"]));
    assert_eq!(packets.len(), cases.len(), "one packet per frame");
    let mut bad = Vec::new();
    for (pkt, c) in packets.iter().zip(cases) {
        let b = match &c.expect {
            Some(e) => check(pkt, e),
            None if pkt.subcast.is_empty() => vec![],
            None => vec!["claimed by the subcast dissector".into()],
        };
        if !b.is_empty() {
            let payload = c.frame.get(L2_L4..).unwrap_or_default();
            let mut b = b;
            b.push(format!("datagram: {}", hex::encode(payload)));
            bad.push((c.what.clone(), b));
        }
    }
    bad
}

fn report(bad: &[(String, Vec<String>)]) -> String {
    bad.iter()
        .take(20)
        .map(|(what, b)| format!("{what}:\n  {}", b.join("\n  ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_vector_decodes_to_its_json() {
    let Some(tshark) = tshark::tshark("every_vector_decodes_to_its_json") else {
        return;
    };
    let files = vector_files();
    assert!(files.len() >= 43, "vectors missing: {}", files.len());
    let mut cases = Vec::new();
    for (name, v) in &files {
        let bytes = hex::decode(v["bytes"].as_str().unwrap()).unwrap();
        let e = expect_vector(v, &bytes);
        // Well-formed ones again on an unregistered port: the heuristic.
        if let Expect::Decoded(w) = &e {
            cases.push(Case {
                what: format!("{name} on port 50000"),
                frame: frame(50001, 50000, &bytes),
                expect: Some(Expect::Decoded(w.clone())),
            });
        }
        cases.push(Case {
            what: name.clone(),
            frame: frame(7411, port_for(&bytes), &bytes),
            expect: Some(e),
        });
    }
    // Not subcast (version 2): the heuristic leaves it alone.
    let mut other = hex::decode(files[0].1["bytes"].as_str().unwrap()).unwrap();
    other[2] = 2;
    cases.push(Case {
        what: "other UDP on port 50000".into(),
        frame: frame(50001, 50000, &other),
        expect: None,
    });
    let bad = run_cases(&tshark, "dissector-vectors", &cases);
    assert!(bad.is_empty(), "{}", report(&bad));
    let decoded = cases
        .iter()
        .filter(|c| matches!(c.expect, Some(Expect::Decoded(_))))
        .count();
    println!("{} frames, {decoded} compared field by field", cases.len());
}

/// Mutants of a well-formed datagram, each with a label.
fn mutants(bytes: &[u8], out: &mut Vec<(String, Vec<u8>)>) {
    let trailer = tree::trailer_len(bytes);
    let body = &bytes[32..bytes.len() - trailer];
    let tag = &bytes[bytes.len() - trailer..];
    let with_body = |b: &[u8]| {
        let mut d = bytes[..32].to_vec();
        d[6..8].copy_from_slice(&(b.len() as u16).to_be_bytes());
        d.extend_from_slice(b);
        d.extend_from_slice(tag);
        d
    };
    // Every truncation point of the body, with a consistent length.
    for k in 0..body.len() {
        out.push((format!("body cut to {k}"), with_body(&body[..k])));
    }
    let mut longer = body.to_vec();
    longer.push(0);
    out.push(("body plus one octet".into(), with_body(&longer)));
    // Every body octet set to 0x00 and to 0xff.
    for i in 0..body.len() {
        for v in [0x00, 0xff] {
            if body[i] != v {
                let mut b = body.to_vec();
                b[i] = v;
                out.push((format!("body[{i}] = {v:#04x}"), with_body(&b)));
            }
        }
    }
    // Datagram prefixes: inside the header, at its end, one short. (Not
    // the empty one: Wireshark hands an empty UDP payload to no dissector.)
    for n in [1, 2, 3, 4, 7, 8, 20, 31, 32, 33, 63, bytes.len() - 1] {
        out.push((
            format!("first {n} octets"),
            bytes[..n.min(bytes.len())].to_vec(),
        ));
    }
}

/// Mutants of a keyed DATA datagram (no Body Length to keep consistent):
/// every prefix, every octet set to 0x00 and to 0xff, one octet more, and
/// the size limit.
fn keyed_mutants(bytes: &[u8], out: &mut Vec<(String, Vec<u8>)>) {
    for n in 1..bytes.len() {
        out.push((format!("first {n} octets"), bytes[..n].to_vec()));
    }
    for i in 0..bytes.len() {
        for v in [0x00, 0xff] {
            if bytes[i] != v {
                let mut b = bytes.to_vec();
                b[i] = v;
                out.push((format!("[{i}] = {v:#04x}"), b));
            }
        }
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    out.push(("plus one octet".into(), longer));
    for total in [9216usize, 9217] {
        let mut b = bytes[..16].to_vec();
        b.resize(total, 0x5c);
        out.push((format!("keyed DATA of {total} octets"), b));
    }
}

#[test]
fn mutants_show_what_the_rust_decoder_reads() {
    let Some(tshark) = tshark::tshark("mutants_show_what_the_rust_decoder_reads") else {
        return;
    };
    let mut cases = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, v) in vector_files() {
        let bytes = hex::decode(v["bytes"].as_str().unwrap()).unwrap();
        let mut m = Vec::new();
        if v["kind"] == "keyed" {
            keyed_mutants(&bytes, &mut m);
        } else if v.get("message").is_none() || rust_decode(&bytes).is_err() {
            // Mutate the well-formed vectors that have a message (the
            // refused bad-tag, replay and stale ones repeat
            // set-subset-list's body).
            continue;
        } else {
            mutants(&bytes, &mut m);
        }
        // Header octets: once per message family is enough.
        if name.starts_with("03-") || name.starts_with("13-") {
            for i in 0..32 {
                let mut b = bytes.clone();
                b[i] ^= 0xff;
                m.push((format!("header[{i}] ^ 0xff"), b));
            }
        }
        for (what, b) in m {
            if seen.insert(b.clone()) {
                cases.push(Case::decoder_says(format!("{name}: {what}"), &b));
            }
        }
    }
    // The size limit: a DATA datagram of exactly 9216 octets, and one more.
    let files = vector_files();
    let data = hex::decode(
        files.iter().find(|(n, _)| n.starts_with("16-")).unwrap().1["bytes"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let trailer = tree::trailer_len(&data);
    for total in [9216usize, 9217] {
        let body_len = total - 32 - trailer;
        let mut d = data[..32].to_vec();
        d[6..8].copy_from_slice(&(body_len as u16).to_be_bytes());
        d.extend_from_slice(&data[32..48]);
        d.resize(32 + body_len, 0x5c);
        d.extend_from_slice(&data[data.len() - trailer..]);
        cases.push(Case::decoder_says(format!("DATA of {total} octets"), &d));
    }

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        let k = match &c.expect {
            Some(Expect::Refused(k)) => DECODE_KINDS.iter().find(|d| *d == k).unwrap(),
            _ => "accepted",
        };
        *kinds.entry(k).or_default() += 1;
    }
    println!("{} mutants: {kinds:?}", cases.len());
    // The mutants reach every refusal the decoder has.
    for k in DECODE_KINDS {
        assert!(kinds.contains_key(k), "no mutant refused as {k}: {kinds:?}");
    }
    let bad = run_cases(&tshark, "dissector-mutants", &cases);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        report(&bad)
    );
}

/// Every code of every enumeration (backend, NAK reason, refusal reason,
/// chunk kind, bid status, not-now reason, ack status, offer status,
/// release status) shows with the name the Rust types give it in JSON.
#[test]
fn every_code_shows_its_rust_name() {
    use subcast_draft_spec::{Vector, vector_key};
    use subcast_proto::replicast::{
        AckStatus, BidStatus, ChunkKind, NotNowReason, OfferStatus, ReplicastMessage as R,
    };
    use subcast_proto::{BackendKind, GrantOutcome, Message as M, NakReason, RefuseReason};

    let Some(tshark) = tshark::tshark("every_code_shows_its_rust_name") else {
        return;
    };
    // The exhaustive matches make a new variant a compile error here.
    let backends = [
        BackendKind::LinuxBridge,
        BackendKind::Openflow,
        BackendKind::Snmp,
    ];
    backends.iter().for_each(|b| match b {
        BackendKind::LinuxBridge | BackendKind::Openflow | BackendKind::Snmp => {}
    });
    let kinds = [ChunkKind::Data, ChunkKind::Manifest];
    kinds.iter().for_each(|k| match k {
        ChunkKind::Data | ChunkKind::Manifest => {}
    });
    let bids = [BidStatus::Bid, BidStatus::AlreadyStored, BidStatus::NotNow];
    bids.iter().for_each(|b| match b {
        BidStatus::Bid | BidStatus::AlreadyStored | BidStatus::NotNow => {}
    });
    use NotNowReason as N;
    let not_now = [N::None, N::Busy, N::Full, N::TooLarge];
    not_now.iter().for_each(|n| match n {
        N::None | N::Busy | N::Full | N::TooLarge => {}
    });
    let acks = [
        AckStatus::Stored,
        AckStatus::HashMismatch,
        AckStatus::StoreFailed,
        AckStatus::Busy,
        AckStatus::Full,
        AckStatus::TooLarge,
    ];
    acks.iter().for_each(|a| match a {
        AckStatus::Stored
        | AckStatus::HashMismatch
        | AckStatus::StoreFailed
        | AckStatus::Busy
        | AckStatus::Full
        | AckStatus::TooLarge => {}
    });
    let offers = [OfferStatus::Have, OfferStatus::Corrupt];
    offers.iter().for_each(|o| match o {
        OfferStatus::Have | OfferStatus::Corrupt => {}
    });

    // Templates: the vectors' messages, changed one enumeration at a time.
    let mut push_msgs: Vec<M> = Vec::new();
    let mut replicast_msgs: Vec<R> = Vec::new();
    for v in subcast_draft_spec::vectors() {
        match v {
            Vector::Valid(v) => match v.message {
                M::Hello(m) => push_msgs.extend(backends.iter().map(|b| {
                    M::Hello(subcast_proto::Hello {
                        backend: *b,
                        ..m.clone()
                    })
                })),
                M::Nak(m) => push_msgs.extend(NakReason::ALL.iter().map(|r| {
                    M::Nak(subcast_proto::Nak {
                        reason: *r,
                        ..m.clone()
                    })
                })),
                M::RendezvousGrant(g)
                    if matches!(g.outcome, GrantOutcome::Refused { .. })
                        && !push_msgs.iter().any(|m| matches!(m, M::RendezvousGrant(_))) =>
                {
                    push_msgs.extend(RefuseReason::ALL.iter().map(|r| {
                        let mut g = g.clone();
                        if let GrantOutcome::Refused { reason, .. } = &mut g.outcome {
                            *reason = *r;
                        }
                        M::RendezvousGrant(g)
                    }))
                }
                M::ReleaseAck(m) => push_msgs.extend([true, false].map(|released| {
                    M::ReleaseAck(subcast_proto::ReleaseAck {
                        released,
                        ..m.clone()
                    })
                })),
                _ => {}
            },
            Vector::Replicast(v) => match v.message {
                R::PutProposal(m) => replicast_msgs.extend(kinds.iter().map(|k| {
                    let mut m = m.clone();
                    m.kind = *k;
                    R::PutProposal(m)
                })),
                R::PutBid(m) => {
                    for s in bids {
                        for n in not_now {
                            let mut m = m.clone();
                            (m.status, m.reason) = (s, n);
                            replicast_msgs.push(R::PutBid(m));
                        }
                    }
                }
                R::PutAck(m) if !replicast_msgs.iter().any(|x| matches!(x, R::PutAck(_))) => {
                    replicast_msgs.extend(acks.iter().map(|a| {
                        let mut m = m.clone();
                        m.status = *a;
                        R::PutAck(m)
                    }))
                }
                R::GetOffer(m) => replicast_msgs.extend(offers.iter().map(|o| {
                    let mut m = m.clone();
                    m.status = *o;
                    R::GetOffer(m)
                })),
                _ => {}
            },
            Vector::Invalid(_) | Vector::Keyed(_) => {}
        }
    }
    let key = vector_key();
    let origin = subcast_proto::Origin {
        key_id: key.id,
        sender_id: 5,
        sequence: 1,
        timestamp_us: subcast_draft_spec::NOW_US,
    };
    let mut cases = Vec::new();
    for m in &push_msgs {
        let b = subcast_proto::seal(&key, origin, m);
        cases.push(Case::decoder_says(serde_json::to_string(m).unwrap(), &b));
    }
    let node = subcast_draft_spec::vector_pair_keys(subcast_draft_spec::NODE_ID);
    for m in &replicast_msgs {
        let b = subcast_proto::replicast::seal(&node, 1, origin.timestamp_us, &[100], m)
            .expect("sealed");
        cases.push(Case::decoder_says(serde_json::to_string(m).unwrap(), &b));
    }
    let want = backends.len()
        + NakReason::ALL.len()
        + RefuseReason::ALL.len()
        + 2
        + kinds.len()
        + bids.len() * not_now.len()
        + acks.len()
        + offers.len();
    assert_eq!(cases.len(), want, "a template vector is missing");
    let bad = run_cases(&tshark, "dissector-codes", &cases);
    assert!(bad.is_empty(), "{}", report(&bad));
}

/// Every field the Lua declares is classified here, so a new field is
/// either compared with the JSON or knowingly left out.
#[test]
fn every_declared_field_is_classified() {
    let lua = tshark::lua_sources();
    let mut declared = Vec::new();
    for line in lua.lines().map(str::trim) {
        let name = if let Some(rest) = line.strip_prefix("uint(") {
            rest.split('"').nth(1)
        } else if line.starts_with("F.") && line.contains("ProtoField.") {
            line.split("\"subcast.")
                .nth(1)
                .and_then(|r| r.split('"').next())
        } else if line.contains("ProtoExpert.new(\"subcast.") {
            line.split("\"subcast.")
                .nth(1)
                .and_then(|r| r.split('"').next())
        } else {
            None
        };
        declared.extend(name.map(str::to_owned));
    }
    assert!(declared.len() > 60, "parsed only {declared:?}");
    for d in &declared {
        assert!(
            tree::DOMAIN.contains(&d.as_str()) || tree::STRUCTURAL.contains(&d.as_str()),
            "subcast.{d} is declared in the Lua but not classified in this test"
        );
    }
    for k in tree::DOMAIN.iter().chain(tree::STRUCTURAL) {
        assert!(
            declared.iter().any(|d| d == k),
            "subcast.{k} is not declared in the Lua"
        );
    }
}
