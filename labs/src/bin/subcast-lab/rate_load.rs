//! The load of the `rate` scenario: K client threads asking for groups, and a
//! poller reading every switch's table from outside the daemons.
//!
//! * Controller clients speak the storage nodes' UDP protocol (RENDEZVOUS_REQUEST,
//!   GRANT, RELEASE, RELEASE_ACK sealed with the rendezvous key) from a socket in
//!   the sender host's namespace, and release each lease as soon as it is granted.
//! * Lazy-MLD clients derive the group from the target set, make the targets join
//!   it (sockets in the targets' namespaces: the kernel sends the MLD report the
//!   snooping bridges learn), wait [`JOIN_DELAY`], and keep the joins in a per-client
//!   LRU cache of [`JOIN_CACHE`] sets (an evicted set's sockets close: a leave).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use labs::Lab;
use rand::Rng;
use subcast_proto::{
    GrantOutcome, Key, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
};

/// Lazy-MLD: wait after the joins before the group counts as ready.
pub const JOIN_DELAY: Duration = Duration::from_millis(10);
/// Lazy-MLD: target sets whose joins one client keeps.
pub const JOIN_CACHE: usize = 100;

/// One grant as measured by a client.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub us: u64,
    pub reused: bool,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientOut {
    pub samples: Vec<Sample>,
    pub refusals: BTreeMap<String, u64>,
    /// Requests or releases without an answer after every retry.
    pub errors: Vec<String>,
    /// Indexes (into the set list) of the sets granted.
    pub granted: BTreeSet<usize>,
}

/// A target set: names and addresses.
pub type TargetSet = Vec<(String, Ipv6Addr)>;

/// The controller's rendezvous endpoint as a client sees it.
#[derive(Clone)]
pub struct CtlEndpoint {
    pub addr: SocketAddr,
    pub key: Key,
    pub parent: Ipv6Addr,
}

struct UdpClient {
    sock: UdpSocket,
    to: SocketAddr,
    sealer: Sealer,
    opener: Opener,
    buf: Vec<u8>,
}

impl UdpClient {
    /// Send `msg` (sealed afresh each time) until an answer with `txid` arrives:
    /// 10 tries, 250 ms apart. Returns the answer and how many copies were sent.
    fn ask(&mut self, msg: &Message, txid: u64) -> Result<(Message, u32)> {
        for tries in 1..=10 {
            let bytes = self.sealer.seal(msg, now_us());
            self.sock.send_to(&bytes, self.to)?;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(250) {
                let Ok(n) = self.sock.recv(&mut self.buf) else {
                    break;
                };
                if let Ok(d) = self.opener.open(&self.buf[..n], now_us())
                    && d.message.txid() == Some(txid)
                {
                    return Ok((d.message, tries));
                }
            }
        }
        Err(anyhow!("no answer from the controller to {}", msg.name()))
    }
}

/// Pick a random set index.
fn pick(rng: &mut impl Rng, n: usize) -> usize {
    rng.random_range(0..n)
}

/// A controller client: request, release, until `deadline`.
pub fn controller_client(
    lab: &Lab,
    sender: &str,
    ep: &CtlEndpoint,
    id: u32,
    sets: &[TargetSet],
    deadline: Instant,
) -> Result<ClientOut> {
    let sock = lab.udp_socket(sender, 0, &[])?;
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    let mut c = UdpClient {
        sock,
        to: ep.addr,
        sealer: Sealer::new(ep.key.clone(), 0x7a7e_0000 + id, now_us()),
        opener: Opener::new(Keyring::new([ep.key.clone()]), ReplayGuard::default()),
        buf: vec![0u8; 9216],
    };
    let mut out = ClientOut::default();
    let mut rng = rand::rng();
    let mut next_id = u64::from(id) << 40;
    while Instant::now() < deadline {
        let i = pick(&mut rng, sets.len());
        next_id += 1;
        let rq = Message::RendezvousRequest(RendezvousRequest {
            request_id: next_id,
            vlan: 0,
            parent: ep.parent,
            lifetime_ms: 10_000,
            targets: sets[i].iter().map(|(_, a)| Member::Ipv6(*a)).collect(),
        });
        let t = Instant::now();
        let answer = match c.ask(&rq, next_id) {
            Ok((a, _)) => a,
            Err(e) => {
                out.errors.push(format!("{e:#}"));
                continue;
            }
        };
        let us = t.elapsed().as_micros() as u64;
        let Message::RendezvousGrant(g) = answer else {
            out.errors
                .push(format!("unexpected answer {}", answer.name()));
            continue;
        };
        match g.outcome {
            GrantOutcome::Granted {
                lease_id, reused, ..
            } => {
                out.samples.push(Sample { us, reused });
                out.granted.insert(i);
                let rel = Message::RendezvousRelease(RendezvousRelease { lease_id });
                match c.ask(&rel, lease_id) {
                    Ok((Message::ReleaseAck(a), _)) if a.released => {}
                    // An earlier copy released it and its answer was lost
                    // (a lossy link): this copy finds nothing to release.
                    Ok((Message::ReleaseAck(_), tries)) if tries > 1 => {}
                    Ok((m, _)) => out.errors.push(format!("release answered {m:?}")),
                    Err(e) => out.errors.push(format!("{e:#}")),
                }
            }
            GrantOutcome::Refused { reason, .. } => {
                *out.refusals.entry(reason.name().to_string()).or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// The lazy-MLD group of a target set: a hash of its names into the lab's pool.
pub fn lazy_group(set: &TargetSet) -> Ipv6Addr {
    let mut names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut h = std::hash::DefaultHasher::new();
    names.hash(&mut h);
    let low = (h.finish() & 0xffff) as u16;
    Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 2, low)
}

/// Join `group` on every target of `set` (one socket per target, in its namespace).
pub fn join_set(lab: &Lab, set: &TargetSet, group: Ipv6Addr) -> Result<Vec<UdpSocket>> {
    set.iter()
        .map(|(h, _)| Ok(lab.udp_socket(h, 0, &[group])?))
        .collect()
}

/// A lazy-MLD client: a hit is a set in its join cache; a miss joins and waits.
pub fn lazy_client(lab: &Lab, sets: &[TargetSet], deadline: Instant) -> Result<ClientOut> {
    let mut out = ClientOut::default();
    let mut rng = rand::rng();
    let mut cache: VecDeque<(usize, Vec<UdpSocket>)> = VecDeque::new();
    while Instant::now() < deadline {
        let i = pick(&mut rng, sets.len());
        let t = Instant::now();
        let reused = if let Some(p) = cache.iter().position(|(s, _)| *s == i) {
            let e = cache.remove(p).ok_or_else(|| anyhow!("cache"))?;
            cache.push_front(e);
            true
        } else {
            let socks = join_set(lab, &sets[i], lazy_group(&sets[i]))?;
            std::thread::sleep(JOIN_DELAY);
            cache.push_front((i, socks));
            if cache.len() > JOIN_CACHE {
                cache.pop_back(); // closes the sockets: the targets leave
            }
            false
        };
        out.samples.push(Sample {
            us: t.elapsed().as_micros() as u64,
            reused,
        });
        out.granted.insert(i);
        if reused {
            // A hit costs nothing: do not spin the CPU the daemons share.
            std::thread::yield_now();
        }
    }
    Ok(out)
}

/// Whether `a` is in the lab's rendezvous pool (`stack::POOL`).
pub fn in_pool(a: &Ipv6Addr) -> bool {
    labs::in_rendezvous_pool(a)
}

/// Pool entries on one switch now: (group, port) pairs. OVS: one per group flow.
pub fn pool_entries(lab: &Lab, switch: &str) -> Result<BTreeSet<(Ipv6Addr, String)>> {
    if lab.switch(switch).ovs.is_some() {
        let flows = lab.ovs_ofctl(switch, "dump-flows", &[])?;
        let text = String::from_utf8_lossy(&flows.stdout);
        let mut out = BTreeSet::new();
        for tok in text.split([' ', ',']) {
            if let Some(a) = tok.strip_prefix("ipv6_dst=")
                && let Ok(g) = a.parse::<Ipv6Addr>()
                && in_pool(&g)
            {
                out.insert((g, "flow".to_string()));
            }
        }
        return Ok(out);
    }
    Ok(lab
        .mdb_show(switch)?
        .into_iter()
        .filter(|e| in_pool(&e.group))
        .map(|e| (e.group, e.port))
        .collect())
}

/// What the poller saw.
#[derive(Debug, Default)]
pub struct Polled {
    /// Most pool groups held at once, per switch.
    pub max_groups: BTreeMap<String, usize>,
    /// Entries that appeared / disappeared between two polls, per switch.
    pub adds: BTreeMap<String, u64>,
    pub dels: BTreeMap<String, u64>,
    pub polls: u64,
}

/// Poll every switch every ~20 ms until `stop`.
pub fn poll_tables(lab: &Lab, stop: &AtomicBool) -> Result<Polled> {
    let mut p = Polled::default();
    let mut last: BTreeMap<String, BTreeSet<(Ipv6Addr, String)>> = BTreeMap::new();
    loop {
        let done = stop.load(Ordering::Relaxed);
        for sw in lab.switches().keys() {
            let now = pool_entries(lab, sw)?;
            let groups: BTreeSet<&Ipv6Addr> = now.iter().map(|(g, _)| g).collect();
            let m = p.max_groups.entry(sw.clone()).or_default();
            *m = (*m).max(groups.len());
            let before = last.remove(sw).unwrap_or_default();
            *p.adds.entry(sw.clone()).or_default() += now.difference(&before).count() as u64;
            *p.dels.entry(sw.clone()).or_default() += before.difference(&now).count() as u64;
            last.insert(sw.clone(), now);
        }
        p.polls += 1;
        if done {
            return Ok(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// p-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sum of every sample of `metric` (all label sets) in Prometheus text.
pub fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Samples of `metric` by the value of its label `label`, in Prometheus text.
pub fn metric_by(text: &str, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some(v) = rest.split(&key).nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        if let Some(n) = l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) {
            *out.entry(v.to_string()).or_default() += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn metric_sum_adds_label_sets_only_of_that_metric() {
        let t = "# HELP x\nsubcast_controller_switch_ops_total{switch=\"A\",op=\"set\"} 3\n\
                 subcast_controller_switch_ops_total{switch=\"B\",op=\"clear\"} 4\n\
                 subcast_controller_switch_ops_totalx 100\n";
        assert_eq!(metric_sum(t, "subcast_controller_switch_ops_total"), 7.0);
        let by = metric_by(t, "subcast_controller_switch_ops_total", "op");
        assert_eq!(by["set"], 3.0);
        assert_eq!(by["clear"], 4.0);
    }

    #[test]
    fn lazy_groups_ignore_order_and_stay_in_the_pool() {
        let a: TargetSet = vec![
            ("X1".into(), Ipv6Addr::LOCALHOST),
            ("X4".into(), Ipv6Addr::LOCALHOST),
        ];
        let b: TargetSet = vec![a[1].clone(), a[0].clone()];
        assert_eq!(lazy_group(&a), lazy_group(&b));
        assert!(in_pool(&lazy_group(&a)));
    }
}
