//! `subcast-lab bench`, part (h): the comparison the seed is about, on Open vSwitch.
//!
//! On Linux bridges MLD snooping runs in the kernel's forwarding path, so a join is
//! quick. Real switches snoop on a control-plane CPU, and so does Open vSwitch: with
//! `mcast_snooping_enable=true` its snooping runs in ovs-vswitchd, and forwarding
//! follows once its flows are revalidated. On `seed-openflow.yaml` (three OVS
//! switches, userspace datapath), in the same run:
//!
//! * `push`: our push through the OpenFlow backend: `POST /v1/rendezvous` -> grant
//!   (after every agent's barrier-confirmed ACK) -> three numbered datagrams sent at
//!   once -> first seen on every target's `eth0`. Each repetition waits until the
//!   released group is cleared from every switch, so every install is fresh. The
//!   data-plane check: the first datagram (sent right after the grant) reached every
//!   target, in every repetition.
//! * `mld_snooping`: the same bridges without agents, `fail_mode=secure` with the
//!   lab's `actions=NORMAL` flow, MLD snooping on, unregistered multicast not
//!   flooded, trunks forwarding reports (`mcast-snooping-flood-reports`, so each
//!   switch learns which trunk leads to a member). The sender tells each target
//!   (unicast), each joins (MLD report) and confirms; probes stream every 200 us.
//!   Reported: told -> every confirmation, told -> first probe on every target, and
//!   the excess: probes delivered to hosts that are not targets meanwhile.
//!
//! Times and counts come from tcpdump on the hosts' `eth0`, outside the daemons.

use std::collections::BTreeMap;
use std::net::SocketAddrV6;
use std::time::Duration;

use anyhow::{Context, Result};
use labs::{Lab, LabOptions, Topology};
use serde_json::{Value, json};

use crate::bench::{PROBE_PORT, join_group, measure_joins, now_us, sender_socket, stats};
use crate::bins::Locate;
use crate::dstcap::{self, DstCapture};
use crate::scenario::{
    Running, bring_up, parent_group, pick_hosts, release, request, wait_cleared,
};

/// The all-OVS topology of this part.
pub const TOPOLOGY: &str = "seed-openflow.yaml";

/// p50 and p99 (nearest rank) of the finite samples, and how many failed.
fn p50_p99(samples: &[f64]) -> Value {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        }
    };
    json!({"n": v.len(), "p50_ms": q(0.5), "p99_ms": q(0.99), "failed": samples.len() - v.len()})
}

/// One push repetition: (request -> first datagram on every target ms, grant ms,
/// whether the first datagram reached every target).
fn push_once(
    r: &Running,
    sock: &std::net::UdpSocket,
    ng: &str,
    targets: &[String],
) -> Result<(f64, f64, bool)> {
    let (lab, stack) = (&r.lab, &r.stack);
    let filter = format!("dst net {} and dst port {PROBE_PORT}", crate::stack::POOL);
    let mut caps = Vec::new();
    for t in targets {
        let h = lab.host(t);
        caps.push(DstCapture::start(lab, &h.netns, &h.ifname, "in", &filter)?);
    }
    let t0 = now_us();
    let lease = request(lab, stack, ng, targets)?;
    for i in 0..3u8 {
        let msg = [b'p', b'r', b'o', b'b', b'e', b'0' + i];
        sock.send_to(&msg, SocketAddrV6::new(lease.group, PROBE_PORT, 0, 0))?;
    }
    // Times are the captures' own; this only lets datagrams in flight land.
    std::thread::sleep(Duration::from_millis(20));
    let mut first_everywhere = true;
    let mut all_ms: f64 = 0.0;
    for c in caps {
        let (tally, payloads) = c.stop_with_payloads()?;
        first_everywhere &= payloads.iter().any(|p| p.as_slice() == b"probe0");
        let t = dstcap::sum(&tally, |_| true);
        all_ms = if t.datagrams == 0 {
            f64::NAN
        } else {
            all_ms.max(t.first_us.saturating_sub(t0) as f64 / 1000.0)
        };
    }
    let grant_ms = lease.grant_us as f64 / 1000.0;
    release(lab, stack, &lease)?;
    // Warm groups are kept for reuse: wait until it is gone, so the next
    // repetition installs afresh.
    let (left, _) = wait_cleared(lab, lease.group, Duration::from_secs(10))?;
    anyhow::ensure!(
        left == 0,
        "group {} still installed 10 s after its release",
        lease.group
    );
    Ok((all_ms, grant_ms, first_everywhere))
}

/// MLD snooping in ovs-vswitchd on every switch: unregistered groups not flooded,
/// reports forwarded over trunks.
fn snooping_on(lab: &Lab) -> Result<()> {
    for (name, sw) in lab.switches() {
        lab.ovs_vsctl(
            name,
            &[
                "set",
                "Bridge",
                &sw.bridge,
                "mcast_snooping_enable=true",
                "other_config:mcast-snooping-disable-flood-unregistered=true",
            ],
        )?;
        for p in &sw.ports {
            if matches!(p.toward, labs::PortPeer::Switch(_)) {
                lab.ovs_vsctl(
                    name,
                    &[
                        "set",
                        "Port",
                        &p.name,
                        "other_config:mcast-snooping-flood-reports=true",
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// Part (h) on `seed-openflow.yaml`: push vs OVS MLD snooping, `reps` each.
pub fn part(locate: &Locate, reps: usize) -> Result<Value> {
    let file = labs::topology_path(TOPOLOGY);
    let topo = Topology::from_yaml_file(&file)?;
    if topo
        .switches
        .values()
        .any(|s| s.backend != labs::Backend::Openflow)
    {
        anyhow::bail!("{TOPOLOGY} must be all Open vSwitch");
    }
    let (ng, _, members) = parent_group(&topo)?;
    let (targets, sender) = pick_hosts(&topo, &members, None, None)?;

    let r = bring_up(&topo, locate)?;
    let push = (|| -> Result<_> {
        let sock = sender_socket(&r.lab, &sender, 0)?;
        let (mut total, mut grant, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let (t, g, f) = push_once(&r, &sock, &ng, &targets)?;
            total.push(t);
            grant.push(g);
            first.push(f);
        }
        Ok((total, grant, first))
    })();
    let Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    let (push, grant, first) = push?;

    let lab = Lab::build(&topo, LabOptions::default()).context("building the OVS MLD lab")?;
    snooping_on(&lab)?;
    let others: Vec<String> = lab
        .hosts()
        .keys()
        .filter(|h| !targets.contains(h) && **h != sender)
        .cloned()
        .collect();
    let mut caps = Vec::new();
    for h in &others {
        let i = lab.host(h);
        caps.push((
            h.clone(),
            DstCapture::start(
                &lab,
                &i.netns,
                &i.ifname,
                "in",
                &format!("dst port {PROBE_PORT}"),
            )?,
        ));
    }
    let joins = measure_joins(
        &lab,
        &targets,
        &sender,
        reps,
        (0, 0),
        Duration::from_millis(1500),
    );
    let mut excess: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (h, c) in caps {
        let t = c.stop()?;
        excess.insert(
            h,
            (0..reps)
                .map(|rep| t.get(&join_group(rep)).map_or(0, |x| x.datagrams))
                .collect(),
        );
    }
    drop(lab);
    let (confirmed, forwarding, _) = joins?;
    let excess_per_rep: Vec<u64> = (0..reps)
        .map(|rep| excess.values().map(|v| v[rep]).sum())
        .collect();
    Ok(json!({
        "topology": file.display().to_string(),
        "targets": targets, "sender": sender, "reps": reps,
        "push": {
            "what": "POST /v1/rendezvous -> grant (every agent ACKed after an OpenFlow barrier) -> 3 datagrams sent at once -> first seen on every target's eth0; fresh install each repetition",
            "total": p50_p99(&push), "grant": p50_p99(&grant),
            "total_stats": stats(&push),
            "first_datagram_delivered": first,
            "first_datagram_delivered_every_rep": first.iter().all(|f| *f),
        },
        "mld_snooping": {
            "what": "OVS mcast_snooping_enable=true (ovs-vswitchd), unregistered not flooded, trunks flood reports: unicast 'join G' to each target -> MLD report -> unicast confirm; probes every 200 us for 1.5 s after",
            "confirmed": p50_p99(&confirmed), "forwarding": p50_p99(&forwarding),
            "forwarding_stats": stats(&forwarding),
            "excess_datagrams_per_rep": excess_per_rep,
            "excess_by_host": excess,
        },
    }))
}

/// The text table of part (h).
pub fn render(v: &Value) -> String {
    let ms = |x: &Value| {
        x.as_f64().map_or("-".to_string(), |f| {
            if f.is_finite() {
                format!("{f:.2}")
            } else {
                "-".into()
            }
        })
    };
    let p = &v["push"];
    let m = &v["mld_snooping"];
    let excess: u64 = m["excess_datagrams_per_rep"]
        .as_array()
        .map_or(0, |a| a.iter().filter_map(Value::as_u64).sum());
    format!(
        "(h) Open vSwitch ({}), targets {}, sender {}, {} repetitions\n\
         \x20 {:<58} {:>9} {:>9}\n\
         \x20 {:<58} {:>9} {:>9}\n\
         \x20 {:<58} {:>9} {:>9}\n\
         \x20 {:<58} {:>9} {:>9}\n\
         \x20 {:<58} {:>9} {:>9}\n\
         \x20 push: first datagram after the grant reached every target in every repetition: {}\n\
         \x20 MLD snooping: probes delivered to non-targets meanwhile: {excess} in all\n",
        v["topology"].as_str().unwrap_or(""),
        v["targets"],
        v["sender"].as_str().unwrap_or(""),
        v["reps"],
        "",
        "p50 ms",
        "p99 ms",
        "push: request -> forwarded at every target",
        ms(&p["total"]["p50_ms"]),
        ms(&p["total"]["p99_ms"]),
        "push: request -> grant (barrier-confirmed ACKs)",
        ms(&p["grant"]["p50_ms"]),
        ms(&p["grant"]["p99_ms"]),
        "OVS MLD snooping: told -> every join confirmed",
        ms(&m["confirmed"]["p50_ms"]),
        ms(&m["confirmed"]["p99_ms"]),
        "OVS MLD snooping: told -> forwarded at every target",
        ms(&m["forwarding"]["p50_ms"]),
        ms(&m["forwarding"]["p99_ms"]),
        if p["first_datagram_delivered_every_rep"] == true {
            "yes"
        } else {
            "NO"
        },
    )
}
