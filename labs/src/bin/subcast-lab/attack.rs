//! The attack scenario: storage nodes with pair keys, several puts (each read
//! back and compared) while a rogue host attacks every daemon; each attack's
//! datagrams are counted by the attacker (`sent`) and the refusals by the
//! daemons' own counters, read from outside (`refused`): agents'
//! `subcast_agent_refused_datagrams_total` and the controller's
//! `subcast_controller_bad_datagrams_total` over HTTP `/metrics`, nodes'
//! `refused_datagrams` in their `stats.json` (written every second). See the
//! README's "Attack scenario" for the attacks and the pass rule.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use subcast_proto::replicast::{
    AckStatus, BidStatus, GetFetch, GetRequest, NotNowReason, PutAck, PutBid, Range, seal,
};
use subcast_proto::{ReplicastMessage, now_us};

use crate::attack_setup::{
    Insider, delta, hex32, junk, read_counters, replies, rss_kib, socket_in, targets,
};
use crate::dstcap::DstCapture;
use crate::scenario::{RunOptions, Running};
use crate::stack::{CTL_PORT, NODE_PORT};

/// Fewest puts made (the first one alone, captured for the replay attack;
/// the others go on until the attacks are over, at most `MAX_PUTS`).
pub const PUTS: usize = 8;
const MAX_PUTS: usize = 200;
/// Growth of a daemon's VmRSS over the run that still passes, KiB.
pub const MEMORY_BOUND_KIB: u64 = 64 * 1024;
/// The spoofed source address the rogue adds to its own `eth0`.
pub const SPOOFED: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5c, 0, 0, 0, 0, 0, 0xffff);
/// Junk datagrams per target daemon.
const JUNK_PER_TARGET: u64 = 50;
/// Pause after each datagram an attacker sends.
const PACE: Duration = Duration::from_micros(300);
/// Captured datagrams replayed (to every node).
const REPLAYED: usize = 40;

/// What one attack did.
struct Outcome {
    sent: u64,
    /// Sockets whose answers are counted as replies.
    socks: Vec<UdpSocket>,
    extra: Value,
}

/// Run one attack against the daemons named by `hit` (for the counters):
/// counters before, the attack, then wait until the refusals cover what was
/// sent (or 12 s), replies, counters after.
fn measure(
    r: &Running,
    name: &str,
    hit: &[String],
    attack: impl FnOnce() -> Result<Outcome>,
) -> Result<Value> {
    let before = read_counters(r, hit)?;
    SENT.with(|m| m.borrow_mut().clear());
    let o = attack().with_context(|| format!("attack {name}"))?;
    // What went to each daemon, counted by `send`.
    let names: BTreeMap<SocketAddrV6, String> =
        targets(r).addrs.into_iter().map(|(n, a)| (a, n)).collect();
    let mut sent_to: BTreeMap<String, u64> = BTreeMap::new();
    for (a, n) in SENT.with(|m| std::mem::take(&mut *m.borrow_mut())) {
        let d = names.get(&a).cloned().unwrap_or_else(|| a.to_string());
        *sent_to.entry(d).or_default() += n;
    }
    // Daemons that refused fewer datagrams than they were sent.
    let short = |by_daemon: &Value| -> Vec<String> {
        sent_to
            .iter()
            .filter(|(d, n)| by_daemon[d.as_str()].as_u64().unwrap_or(0) < **n)
            .map(|(d, n)| format!("{d}: sent {n}, refused {}", by_daemon[d.as_str()]))
            .collect()
    };
    let mut after = read_counters(r, hit)?;
    let t0 = Instant::now();
    while !short(&delta(&before, &after).1).is_empty() && t0.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(200));
        after = read_counters(r, hit)?;
    }
    let socks: Vec<&UdpSocket> = o.socks.iter().collect();
    let got = replies(&socks);
    let after = read_counters(r, hit)?;
    let (refused, by_daemon, by_reason) = delta(&before, &after);
    let missing = short(&by_daemon);
    let counted: u64 = sent_to.values().sum();
    let ok = o.sent > 0
        && counted == o.sent
        && refused >= o.sent
        && missing.is_empty()
        && got.is_empty();
    eprintln!(
        "subcast-lab attack: {name}: sent {}, refused {refused}, replies {}",
        o.sent,
        got.len()
    );
    let mut v = json!({
        "ok": ok, "sent": o.sent, "refused": refused, "replies": got.len(),
        "targets": hit, "sent_by_daemon": sent_to, "refused_by_daemon": by_daemon,
        "refused_by_reason": by_reason, "not_refused": missing,
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut v, o.extra) {
        m.extend(x);
    }
    Ok(v)
}

/// An honest (authenticated) request of the insider: its answers, and the
/// refusals the daemons counted meanwhile.
fn probe(
    r: &Running,
    hit: &[String],
    sock: &UdpSocket,
    send: impl FnOnce() -> Result<()>,
) -> Result<(Vec<Vec<u8>>, Value)> {
    let stats = |h: &String| -> Value {
        let p = r.stack.dir.join(format!(
            "store-{}/stats.json",
            h.trim_start_matches("node-")
        ));
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    let s0: Vec<Value> = hit.iter().map(stats).collect();
    let before = read_counters(r, hit)?;
    send()?;
    let got = replies(&[sock]);
    // Stats files are written once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let d = delta(&before, &read_counters(r, hit)?);
    let mut moved = serde_json::Map::new();
    for (h, a) in hit.iter().zip(s0) {
        let b = stats(h);
        if let Some(o) = b["node"].as_object() {
            for (k, v) in o {
                let dv = v
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(a["node"][k].as_u64().unwrap_or(0));
                if dv > 0 {
                    moved.insert(format!("{h}.{k}"), json!(dv));
                }
            }
        }
    }
    Ok((
        got,
        json!({"total": d.0, "by_reason": d.2, "counters_moved": moved}),
    ))
}

fn send_all(s: &UdpSocket, payloads: &[Vec<u8>], to: &[SocketAddrV6]) -> Result<u64> {
    let mut n = 0;
    for p in payloads {
        for a in to {
            send(s, p, *a)?;
            n += 1;
        }
    }
    Ok(n)
}

thread_local! {
    /// Datagrams `send` sent, by destination, since `measure` cleared it.
    static SENT: std::cell::RefCell<BTreeMap<SocketAddrV6, u64>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// Send one datagram, waiting while the socket buffer is full, then
/// `PACE`: Open vSwitch's userspace datapath drops parts of back-to-back
/// bursts on a busy machine, and a datagram lost on the way is not refused.
fn send(s: &UdpSocket, p: &[u8], to: SocketAddrV6) -> Result<()> {
    loop {
        match s.send_to(p, SocketAddr::V6(to)) {
            Ok(_) => {
                SENT.with(|m| *m.borrow_mut().entry(to).or_default() += 1);
                std::thread::sleep(PACE);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).with_context(|| format!("sending to {to}")),
        }
    }
}

/// The put/get work of the sender: `PUTS` objects, each put then read back.
struct Puts {
    done: usize,
    verified: usize,
    errors: Vec<String>,
    ms: Vec<f64>,
}

fn puts(
    r: &Running,
    client: &str,
    sender: &str,
    range: std::ops::Range<usize>,
    size: usize,
    until: Option<&AtomicBool>,
) -> Puts {
    let mut p = Puts {
        done: 0,
        verified: 0,
        errors: Vec::new(),
        ms: Vec::new(),
    };
    for i in range {
        if i >= PUTS && until.is_none_or(|u| u.load(Ordering::SeqCst)) {
            break;
        }
        let t0 = Instant::now();
        match crate::objects::put_one(r, client, sender, "attack", i, size) {
            Ok(same) => {
                p.done += 1;
                p.verified += usize::from(same);
                if !same {
                    p.errors.push(format!("object {i} read back differs"));
                }
            }
            Err(e) => p.errors.push(format!("{e:#}")),
        }
        p.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    p
}

/// The attack scenario on a running lab (controller and agents up).
pub fn attack(r: &mut Running, opts: &RunOptions, sender: &str) -> Result<Value> {
    let keys = crate::attack_setup::provision(r, sender)?;
    let client = keys.client_config.display().to_string();
    let rogue = crate::attack_setup::pick_rogue(r, sender)?;
    let insider = Insider::load(&keys.key_files[&rogue])?;
    let t = targets(r);
    let (lab, stack) = (&r.lab, &r.stack);
    let pids = stack.pids();
    let mem_start: BTreeMap<String, u64> =
        pids.iter().map(|(n, p)| (n.clone(), rss_kib(*p))).collect();
    let rogue_ns = lab.host(&rogue).netns.clone();
    let rogue_ip = lab.host(&rogue).ipv6;
    let all: Vec<String> = t.addrs.keys().cloned().collect();
    let nodes = t.of("node-");
    let node_names: Vec<String> = nodes.iter().map(|n| n.0.clone()).collect();
    let node_addrs: Vec<SocketAddrV6> = nodes.iter().map(|n| n.1).collect();
    let node_ids: Vec<u32> = stack
        .nodes
        .keys()
        .map(|h| u32::from(lab.host(h).index))
        .collect();

    // Put 0, captured on the sender's eth0 (for the replays); the daemons'
    // refusals meanwhile are the noise of honest traffic.
    let s = lab.host(sender);
    let cap = DstCapture::start_snap(
        lab,
        &s.netns,
        &s.ifname,
        "out",
        &format!("dst port {NODE_PORT}"),
        4096,
    )?;
    let cap_ctl = DstCapture::start_snap(
        lab,
        &s.netns,
        &s.ifname,
        "out",
        &format!("dst port {CTL_PORT}"),
        4096,
    )?;
    let noise_before = read_counters(r, &all)?;
    let first = puts(r, &client, sender, 0..1, opts.object_size, None);
    let captured = cap.stop_payloads()?;
    let captured_ctl = cap_ctl.stop_payloads()?;
    // Wait for the nodes' stats (once a second) to include put 0.
    std::thread::sleep(Duration::from_millis(1100));
    let noise = delta(&noise_before, &read_counters(r, &all)?);
    if captured.is_empty() {
        bail!(
            "nothing captured from put 0 for the replay attack (put errors: {:?})",
            first.errors
        );
    }
    let step = (captured.len() / REPLAYED).max(1);
    let replay_set: Vec<Vec<u8>> = captured
        .iter()
        .step_by(step)
        .take(REPLAYED)
        .cloned()
        .collect();
    // A chunk a node holds, and its holders (for fetches): a data chunk,
    // or the manifest of an object small enough to go inside it.
    let holders = crate::stored::replicas(&stack.dir, stack.nodes.keys());
    let (chunk_hex, chunk_holders) = ["data", "manifest"]
        .iter()
        .find_map(|kind| holders.iter().find(|(_, (k, _))| k == kind))
        .map(|(id, (_, h))| (id.clone(), h.clone()))
        .ok_or_else(|| anyhow!("put 0 stored no chunk"))?;
    let chunk_id = hex32(&chunk_hex)?;
    let chunk_len =
        std::fs::metadata(find_chunk(&stack.dir, &chunk_holders[0], &chunk_hex)?)?.len();
    let victim = *node_ids
        .iter()
        .find(|id| **id != insider.keys.own_id())
        .ok_or_else(|| anyhow!("no node besides the rogue to impersonate"))?;
    // A node drops, uncounted, a datagram that claims its own sender id (its
    // own multicast looped back): the rogue sends nothing that claims to be
    // the receiver itself (see the README).
    let rogue_node = format!("node-{rogue}");
    let victim_node = format!(
        "node-{}",
        stack
            .nodes
            .keys()
            .find(|h| u32::from(lab.host(h).index) == victim)
            .cloned()
            .unwrap_or_default()
    );
    let except = |skip: &[&String]| -> (Vec<String>, Vec<SocketAddrV6>) {
        nodes
            .iter()
            .filter(|(n, _)| !skip.contains(&n))
            .map(|(n, a)| (n.clone(), *a))
            .unzip()
    };
    let (others, other_addrs) = except(&[&rogue_node]);
    let (forge_names, forge_addrs) = except(&[&rogue_node, &victim_node]);

    // The other puts run while the attacks go on.
    let mut attacks = serde_json::Map::new();
    let attacks_over = AtomicBool::new(false);
    let (rest, attack_result) = std::thread::scope(|sc| {
        let worker = sc.spawn(|| {
            puts(
                r,
                &client,
                sender,
                1..MAX_PUTS,
                opts.object_size,
                Some(&attacks_over),
            )
        });
        let res = (|| -> Result<()> {
            let sock = socket_in(&rogue_ns, rogue_ip)?;
            // forged_data first, while the puts surely go on: keyed DATA
            // for transfers in flight, under a key of the rogue's own
            // (`attack_forged`); their targets must refuse it as `bad-mac`,
            // at least once.
            let mut v = measure(r, "forged_data", &others, || {
                let f =
                    crate::attack_forged::forge_live(&rogue_ns, rogue_ip, &other_addrs, |b, a| {
                        send(&sock, b, a)
                    })?;
                Ok(Outcome {
                    sent: f.sent,
                    socks: vec![sock.try_clone()?],
                    extra: json!({"transfers": f.transfers, "span_ms": f.span_ms}),
                })
            })?;
            let live = v["refused_by_reason"]["bad-mac"].as_u64().unwrap_or(0);
            v["refused_in_flight"] = json!(live);
            v["ok"] = json!(v["ok"] == true && live > 0);
            attacks.insert("forged_data".into(), v);

            // junk: random bytes, no key, to every daemon.
            let v = measure(r, "junk", &all, || {
                let mut n = 0;
                for a in t.addrs.values() {
                    for i in 0..JUNK_PER_TARGET {
                        send(&sock, &junk(i as usize), *a)?;
                        n += 1;
                    }
                }
                Ok(Outcome {
                    sent: n,
                    socks: vec![sock.try_clone()?],
                    extra: json!({}),
                })
            })?;
            attacks.insert("junk".into(), v);

            // replay: put 0's datagrams verbatim, from the rogue and from a
            // socket on the sender's own address (an on-path attacker).
            let ctl: Vec<String> = vec!["controller".into()];
            let mut hit = node_names.clone();
            hit.extend(ctl.clone());
            let sender_ns = s.netns.clone();
            let v = measure(r, "replay", &hit, || {
                let own = socket_in(&sender_ns, s.ipv6)?;
                let mut n = send_all(&sock, &replay_set, &other_addrs)?;
                n += send_all(&own, &replay_set, &node_addrs)?;
                let ctl_addr = t.addrs["controller"];
                let ctl_set: Vec<Vec<u8>> = captured_ctl.iter().take(REPLAYED).cloned().collect();
                n += send_all(&sock, &ctl_set, &[ctl_addr])?;
                n += send_all(&own, &ctl_set, &[ctl_addr])?;
                Ok(Outcome {
                    sent: n,
                    socks: vec![sock.try_clone()?, own],
                    extra: json!({"captured": captured.len(), "captured_to_controller": captured_ctl.len(),
                                  "replayed_distinct": replay_set.len() + ctl_set.len(),
                                  "from": [rogue_ip.to_string(), s.ipv6.to_string()]}),
                })
            })?;
            attacks.insert("replay".into(), v);

            // spoofed_source: junk and replays from an address that is not
            // the rogue's (an alias it adds to its own eth0).
            // Deprecated at once (preferred_lft 0): bound explicitly only, never
            // picked as the source of the rogue host's own node (its bids
            // would name an address the controller does not know).
            let alias = format!("{SPOOFED}/64");
            let ip = |op: &str, extra: &[&str]| {
                let mut a = vec!["ip", "-6", "addr", op, &alias, "dev", "eth0"];
                a.extend_from_slice(extra);
                lab.exec(&rogue_ns, &a)
            };
            ip("add", &["nodad", "preferred_lft", "0"])?;
            let v = measure(r, "spoofed_source", &all, || {
                let sp = socket_in(&rogue_ns, SPOOFED)?;
                let mut n = 0;
                for a in t.addrs.values() {
                    for i in 0..JUNK_PER_TARGET / 5 {
                        send(&sp, &junk(1000 + i as usize), *a)?;
                        n += 1;
                    }
                }
                n += send_all(&sp, &replay_set, &node_addrs)?;
                Ok(Outcome {
                    sent: n,
                    socks: vec![sp],
                    extra: json!({"source": SPOOFED.to_string()}),
                })
            })?;
            attacks.insert("spoofed_source".into(), v);
            ip("del", &[])?;

            // forged_ack / forged_bid: the insider's own pair keys, claiming
            // to be another node.
            let forged = insider.claiming(victim)?;
            for (name, msg) in [
                (
                    "forged_ack",
                    ReplicastMessage::PutAck(PutAck {
                        txid: 1,
                        chunk_id,
                        status: AckStatus::Stored,
                    }),
                ),
                (
                    "forged_bid",
                    ReplicastMessage::PutBid(PutBid {
                        txid: 1,
                        chunk_id,
                        status: BidStatus::AlreadyStored,
                        reason: NotNowReason::None,
                        earliest_start_us: 0,
                        queue_depth: 0,
                        free_bytes: u64::MAX,
                        retry_after_ms: 0,
                    }),
                ),
            ] {
                let v = measure(r, name, &forge_names, || {
                    let mut n = 0;
                    for k in 0..10u64 {
                        let now = now_us();
                        let bytes = seal(&forged, now + k, now, &node_ids, &msg)?;
                        for a in &forge_addrs {
                            send(&sock, &bytes, *a)?;
                            n += 1;
                        }
                    }
                    Ok(Outcome {
                        sent: n,
                        socks: vec![sock.try_clone()?],
                        extra: json!({"insider": insider.keys.own_id(), "claimed_sender": victim}),
                    })
                })?;
                attacks.insert(name.into(), v);
            }

            // sequence_poison: the insider's own datagram with sequence
            // u64::MAX; then an honest one must still be accepted (answered).
            let poison_req = GetRequest { txid: 7, chunk_id };
            let v = measure(r, "sequence_poison", &others, || {
                let now = now_us();
                let bytes = seal(
                    &insider.keys,
                    u64::MAX,
                    now,
                    &node_ids,
                    &ReplicastMessage::GetRequest(poison_req.clone()),
                )?;
                let n = send_all(&sock, &[bytes], &other_addrs)?;
                Ok(Outcome {
                    sent: n,
                    socks: vec![sock.try_clone()?],
                    extra: json!({"sequence": u64::MAX.to_string()}),
                })
            })?;
            attacks.insert("sequence_poison".into(), v);
            let honest = socket_in(&rogue_ns, rogue_ip)?;
            let (answers, refused) = probe(r, &others, &honest, || {
                let now = now_us();
                let m = ReplicastMessage::GetRequest(GetRequest { txid: 8, chunk_id });
                send_all(
                    &honest,
                    &[seal(&insider.keys, now, now, &node_ids, &m)?],
                    &other_addrs,
                )?;
                Ok(())
            })?;
            if let Some(v) = attacks.get_mut("sequence_poison") {
                // Holders of the chunk answer the insider's next honest
                // GET_REQUEST (GET_OFFER): its sender was not poisoned.
                v["honest_after"] = json!({"answers": answers.len(), "refused": refused});
                v["ok"] = json!(v["ok"] == true && !answers.is_empty());
            }

            // huge_fetch: GET_FETCH for everything with tiny DATA sizes
            // (refused), then huge and repeated ranges at an allowed size
            // (answered with at most the chunk).
            let chunk_holders: Vec<String> = chunk_holders
                .iter()
                .filter(|h| **h != rogue)
                .cloned()
                .collect();
            let holder_addrs: Vec<SocketAddrV6> = chunk_holders
                .iter()
                .map(|h| SocketAddrV6::new(lab.host(h).ipv6, NODE_PORT, 0, 0))
                .collect();
            let holder_names: Vec<String> =
                chunk_holders.iter().map(|h| format!("node-{h}")).collect();
            let mut v = measure(r, "huge_fetch", &holder_names, || {
                let mut n = 0;
                for (k, payload) in [0u16, 1, 16, 100, 511].into_iter().enumerate() {
                    let now = now_us();
                    let m = ReplicastMessage::GetFetch(GetFetch {
                        txid: 100 + k as u64,
                        chunk_id,
                        datagram_payload: payload,
                        ranges: vec![Range {
                            start: 0,
                            end: u32::MAX,
                        }],
                    });
                    let ids: Vec<u32> = chunk_holders
                        .iter()
                        .map(|h| u32::from(lab.host(h).index))
                        .collect();
                    n += send_all(
                        &sock,
                        &[seal(&insider.keys, now + k as u64, now, &ids, &m)?],
                        &holder_addrs,
                    )?;
                }
                Ok(Outcome {
                    sent: n,
                    socks: vec![sock.try_clone()?],
                    extra: json!({"datagram_payloads": [0, 1, 16, 100, 511]}),
                })
            })?;
            let big = socket_in(&rogue_ns, rogue_ip)?;
            let to = holder_addrs[0];
            let id = u32::from(lab.host(&chunk_holders[0]).index);
            let (got, big_refused) = probe(r, &holder_names[..1], &big, || {
                let now = now_us();
                let m = ReplicastMessage::GetFetch(GetFetch {
                    txid: 200,
                    chunk_id,
                    datagram_payload: 1024,
                    ranges: vec![
                        Range {
                            start: 0,
                            end: u32::MAX
                        };
                        64
                    ],
                });
                send(&big, &seal(&insider.keys, now, now, &[id], &m)?, to)
            })?;
            let payload_bytes: u64 = got
                .iter()
                .filter_map(|b| subcast_proto::replicast::decode(b).ok())
                .filter_map(|d| match d.message {
                    ReplicastMessage::Data(x) => Some(x.payload.len() as u64),
                    _ => None,
                })
                .sum();
            let bounded_ok = payload_bytes <= chunk_len;
            v["bounded"] = json!({
                "ranges": 64, "range": [0, u32::MAX], "datagram_payload": 1024, "holder": chunk_holders[0],
                "reply_datagrams": got.len(), "refused": big_refused, "reply_payload_bytes": payload_bytes, "chunk_bytes": chunk_len,
                "ok": bounded_ok,
            });
            v["ok"] = json!(v["ok"] == true && bounded_ok);
            attacks.insert("huge_fetch".into(), v);
            Ok(())
        })();
        attacks_over.store(true, Ordering::SeqCst);
        (worker.join(), res)
    });
    let rest = rest.map_err(|_| anyhow!("the put thread panicked"))?;
    attack_result?;

    // Leases: none left some time after the puts (polled, 30 s deadline).
    let (leases_leaked, live, leases) = crate::objects::leases_leaked(r)?;

    let mut memory = serde_json::Map::new();
    let mut memory_ok = true;
    for (n, p) in &pids {
        let (a, b) = (mem_start[n], rss_kib(*p));
        let ok = b > 0 && b <= a + MEMORY_BOUND_KIB;
        memory_ok &= ok;
        memory.insert(n.clone(), json!({"start": a, "end": b, "ok": ok}));
    }
    if let Ok(to) = std::env::var("SUBCAST_ATTACK_KEEP_LOGS") {
        let _ = std::fs::create_dir_all(&to);
        for e in std::fs::read_dir(&stack.dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                let _ = std::fs::copy(e.path(), std::path::Path::new(&to).join(e.file_name()));
            }
        }
    }
    let done = first.done + rest.done;
    let verified = first.verified + rest.verified;
    let mut errors = first.errors;
    errors.extend(rest.errors);
    let holders = crate::stored::replicas(&stack.dir, stack.nodes.keys());
    let count = 1 + rest.ms.len();
    let want_data = count * crate::stack_config::data_chunks_of(opts.object_size);
    let (stored, stored_ok) = crate::stored::report(&holders, 3, want_data);
    let attacks_ok = attacks.values().all(|v| v["ok"] == true);
    let ok = attacks_ok
        && count >= PUTS
        && done == count
        && verified == count
        && stored_ok
        && leases_leaked == 0
        && memory_ok;
    let mut ms = first.ms;
    ms.extend(rest.ms);
    Ok(json!({
        "ok": ok,
        "scenario": "attack",
        "topology": opts.topology.display().to_string(),
        "sender": sender,
        "rogue": {"host": rogue, "address": rogue_ip.to_string(), "node_id": insider.keys.own_id(),
                  "key_file": keys.key_files[&rogue].display().to_string(), "spoofed": SPOOFED.to_string()},
        "controller": {"switch": stack.ctl_switch, "address": stack.ctl_ip.to_string()},
        "lab_up_ms": r.build_ms,
        "attacks": attacks,
        "attacks_ok": attacks_ok,
        "unreachable": t.unreachable,
        "noise_during_put_0": {"refused": noise.0, "by_daemon": noise.1, "by_reason": noise.2},
        "puts": {"count": count, "during_attacks": count - 1, "done": done, "verified": verified, "object_size": opts.object_size,
                 "ms": ms, "errors": errors},
        "stored": stored,
        "leases_leaked": leases_leaked,
        "leases_live": live,
        "leases_after": leases,
        "memory_kib": memory,
        "memory_bound_kib": MEMORY_BOUND_KIB,
        "memory_ok": memory_ok,
        "daemon_logs": if ok { Value::Null } else { json!(stack.logs()) },
        "pair_keys": {"secret": keys.secret.display().to_string(), "client_id": keys.client_id},
    }))
}

fn find_chunk(dir: &std::path::Path, host: &str, id: &str) -> Result<std::path::PathBuf> {
    fn walk(d: &std::path::Path, id: &str) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = walk(&p, id) {
                    return Some(f);
                }
            } else if e.file_name().to_string_lossy() == id {
                return Some(p);
            }
        }
        None
    }
    ["data", "manifests"]
        .iter()
        .find_map(|sub| walk(&dir.join(format!("store-{host}/{sub}")), id))
        .ok_or_else(|| anyhow!("chunk {id} not found in store-{host}"))
}
