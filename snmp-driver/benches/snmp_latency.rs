//! Latency of SNMP operations against real snmpd + the pass_persist handler on a Linux
//! bridge in its own netns (needs root). `cargo bench -p subcast-snmp --bench snmp_latency`
//! [-- N] prints a table of p50/p99/max per operation, v2c and v3 (N operations each,
//! default 200).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_snmp::testlab::{COMMUNITY_RW, Lab, V3_AUTH, V3_PRIV, V3_USER};
use subcast_snmp::{MacAddr, PortSet, SnmpConfig, SnmpSwitch};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name:<46} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} |",
        v.len(),
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.99)),
        ms(*v.last().unwrap_or(&Duration::ZERO)),
    );
}

async fn bench(label: &str, sw: &SnmpSwitch, lab: &Lab, n: usize) {
    let x: Ipv6Addr = "ff3e::b:1".parse().expect("group");
    let p1 = lab.port_no(&lab.hosts[0]);
    let p2 = lab.port_no(&lab.hosts[1]);
    let a: PortSet = [p1].into_iter().collect();
    let b: PortSet = [p2].into_iter().collect();
    let mut change = Vec::with_capacity(n);
    for i in 0..n {
        let set = if i % 2 == 0 { &a } else { &b };
        let t = Instant::now();
        sw.install(x, set).await.expect("install");
        change.push(t.elapsed());
    }
    let mut same = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sw.install(x, &a).await.expect("install");
        same.push(t.elapsed());
    }
    let mut get = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sw.parent_ports(1, x).await.expect("get");
        get.push(t.elapsed());
    }
    let mac: MacAddr = lab.hosts[0].mac.parse().expect("mac");
    let mut fdb_cold = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        sw.invalidate_fdb_cache();
        let t = Instant::now();
        sw.port_of(1, mac).await.expect("fdb");
        fdb_cold.push(t.elapsed());
    }
    let mut del = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        sw.install(x, &a).await.expect("install");
        let t = Instant::now();
        sw.remove(x).await.expect("remove");
        del.push(t.elapsed());
    }
    row(&format!("{label} SET egress (port changes)"), change);
    row(&format!("{label} SET egress (no change)"), same);
    row(&format!("{label} GET row"), get);
    row(&format!("{label} FDB walk (cache miss)"), fdb_cold);
    row(&format!("{label} SET status=invalid (delete)"), del);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let mut lab = Lab::new(2);
    lab.start_snmpd(std::path::Path::new(env!(
        "CARGO_BIN_EXE_subcast-qbridge-passpersist"
    )));
    let v2 = SnmpConfig::v2c(lab.address(), COMMUNITY_RW);
    let v3 = SnmpConfig::v3_sha_aes(lab.address(), V3_USER, V3_AUTH, V3_PRIV);
    let mut sw2 = None;
    for _ in 0..50 {
        if let Ok(s) = SnmpSwitch::connect(v2.clone()).await {
            sw2 = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sw2 = sw2.expect("connect v2c");
    let sw3 = SnmpSwitch::connect(v3).await.expect("connect v3");
    println!("snmpd + subcast-qbridge-passpersist on a Linux bridge, loopback, {n} ops each");
    println!(
        "| operation                                      |     n | p50 (ms) | p99 (ms) | max (ms) |"
    );
    println!(
        "|------------------------------------------------|-------|----------|----------|----------|"
    );
    bench("v2c", &sw2, &lab, n).await;
    bench("v3 authPriv", &sw3, &lab, n).await;
}
