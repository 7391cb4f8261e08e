//! Latency of SNMP operations against real snmpd + the pass_persist handler on a Linux
//! bridge in its own netns (needs root, snmpd and the `snmp` tools).
//!
//! `cargo bench -p subcast-snmp --bench snmp_latency [-- N]` (N writes per row, default 200)
//! prints a table of p50/p99/max per operation and writes JSON to `$SUBCAST_BENCH_JSON`
//! (default `target/bench/snmp-latency.json`).
//!
//! Side by side, interleaved write by write in the same run:
//! - a static multicast row write (StaticEgressPorts + Status permanent(3) in one SET PDU,
//!   the port set alternating so the bridge really changes) through the `subcast-snmp`
//!   client, v2c and v3 authPriv (SHA/AES), on one long-lived session;
//! - the same write with net-snmp's `snmpset` command: a new process per write, so its
//!   time includes process start, and for v3 the engine discovery round trip and the
//!   password-to-key hashing that net-snmp repeats in every process;
//! - `snmpget sysUpTime.0` (answered by snmpd itself, not the handler): the cost of
//!   starting an net-snmp tool and one round trip, to subtract from the `snmpset` rows;
//! - GETs of the row and of sysUpTime.0 through the client, for reference;
//! - ten rows written with one SET PDU (`set_rows`) vs one SET per row (`install`).
//!
//! `SUBCAST_SNMP_BENCH_BASELINE=/path/to/other/subcast-qbridge-passpersist` measures a
//! second handler binary (e.g. an older build) in the same run, in its own lab.

use serde_json::json;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use subcast_snmp::mib::{self, StaticMcastIndex, format_oid};
use subcast_snmp::session::{Req, Transport};
use subcast_snmp::testlab::{COMMUNITY_RW, Lab, V3_AUTH, V3_PRIV, V3_USER};
use subcast_snmp::{MacAddr, PortSet, RowChange, SnmpConfig, SnmpSwitch};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Debug)]
struct Row {
    handler: String,
    name: String,
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn row(handler: &str, name: &str, mut v: Vec<Duration>) -> Row {
    v.sort();
    Row {
        handler: handler.into(),
        name: name.into(),
        n: v.len(),
        p50: pct(&v, 0.5),
        p99: pct(&v, 0.99),
        max: *v.last().unwrap_or(&Duration::ZERO),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Arguments of net-snmp tools for one version.
fn tool_args(lab: &Lab, v3: bool) -> Vec<String> {
    let mut a: Vec<String> = if v3 {
        [
            "-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA", "-A", V3_AUTH, "-x", "AES", "-X",
            V3_PRIV,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        ["-v2c", "-c", COMMUNITY_RW]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    a.extend(["-On", "-t", "2", "-r", "0"].map(String::from));
    a.push(lab.address());
    a
}

/// Runs a net-snmp tool once and returns how long it took (process start included).
fn timed_tool(tool: &str, args: &[String]) -> Duration {
    let t = Instant::now();
    let out = Command::new(tool)
        .args(args)
        .env("MIBS", "")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install the `snmp` package): {e}"));
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `snmpset` arguments writing the row `idx` with `ports`, as the client does.
fn snmpset_row_args(base: &[String], idx: &StaticMcastIndex, ports: &PortSet) -> Vec<String> {
    let list = mib::encode_port_list(ports, 1);
    let hex: String = list.iter().map(|b| format!("{b:02x}")).collect();
    let mut a = base.to_vec();
    a.extend([
        format_oid(&idx.column_oid(mib::SM_COL_EGRESS)),
        "x".into(),
        hex,
        format_oid(&idx.column_oid(mib::SM_COL_STATUS)),
        "i".into(),
        "3".into(),
    ]);
    a
}

async fn connect(cfg: SnmpConfig) -> SnmpSwitch {
    let t0 = Instant::now();
    loop {
        match SnmpSwitch::connect(cfg.clone()).await {
            Ok(s) => return s,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to the bench snmpd: {e}"),
        }
    }
}

/// One version (v2c or v3) against one lab: client and `snmpset` interleaved.
async fn bench_version(
    handler: &str,
    label: &str,
    v3: bool,
    cfg: &SnmpConfig,
    lab: &Lab,
    n: usize,
    out: &mut Vec<Row>,
) {
    let sw = &connect(cfg.clone()).await;
    let p1 = lab.port_no(&lab.hosts[0]);
    let p2 = lab.port_no(&lab.hosts[1]);
    let a: PortSet = [p1].into_iter().collect();
    let b: PortSet = [p2].into_iter().collect();
    // Two rows: one written by the client, one by snmpset, so that both really change.
    let x: Ipv6Addr = "ff3e::b:1".parse().expect("group");
    let y: Ipv6Addr = "ff3e::b:2".parse().expect("group");
    let y_idx = StaticMcastIndex {
        vlan: 1,
        mac: MacAddr::ipv6_multicast(y),
        receive_port: 0,
    };
    let base = tool_args(lab, v3);
    let mut get_base = base.clone();
    get_base.push(format_oid(mib::SYS_UPTIME_0));

    // Warm-up: sessions, handler, the bridge's first entries.
    for i in 0..5 {
        let set = if i % 2 == 0 { &a } else { &b };
        sw.install(x, set).await.expect("install");
        timed_tool("snmpset", &snmpset_row_args(&base, &y_idx, set));
    }

    let mut client_set = Vec::with_capacity(n);
    let mut tool_set = Vec::with_capacity(n);
    let mut tool_get = Vec::with_capacity(n);
    for i in 0..n {
        let set = if i % 2 == 0 { &b } else { &a };
        let t = Instant::now();
        sw.install(x, set).await.expect("install");
        client_set.push(t.elapsed());
        tool_set.push(timed_tool("snmpset", &snmpset_row_args(&base, &y_idx, set)));
        tool_get.push(timed_tool("snmpget", &get_base));
    }
    let mut raw = Transport::new(cfg.clone());
    let mut get_row = Vec::with_capacity(n);
    let mut get_uptime = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sw.parent_ports(1, x).await.expect("get");
        get_row.push(t.elapsed());
        let t = Instant::now();
        raw.request(&Req::Get(vec![mib::SYS_UPTIME_0.to_vec()]))
            .await
            .expect("get sysUpTime");
        get_uptime.push(t.elapsed());
    }
    // Ten rows: one SET PDU (set_rows) vs one SET per row (install).
    let groups: Vec<Ipv6Addr> = (0..10)
        .map(|i| Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0xc, i))
        .collect();
    let rows_to = |ports: &PortSet| -> Vec<RowChange> {
        groups
            .iter()
            .map(|g| RowChange::Set {
                vlan: 1,
                mac: MacAddr::ipv6_multicast(*g),
                ports: ports.clone(),
            })
            .collect()
    };
    let mut ten_one_pdu = Vec::with_capacity(n / 4);
    let mut ten_pdus = Vec::with_capacity(n / 4);
    for i in 0..n / 4 {
        let (s1, s2) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let t = Instant::now();
        let out = sw.set_rows(&rows_to(s1)).await.expect("set_rows");
        ten_one_pdu.push(t.elapsed());
        assert_eq!(out.pdus, 1);
        let t = Instant::now();
        for g in &groups {
            sw.install(*g, s2).await.expect("install");
        }
        ten_pdus.push(t.elapsed());
    }
    let deletes: Vec<RowChange> = groups
        .iter()
        .map(|g| RowChange::Delete {
            vlan: 1,
            mac: MacAddr::ipv6_multicast(*g),
        })
        .collect();
    sw.set_rows(&deletes).await.expect("delete the ten rows");
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
    sw.remove_mac(1, y_idx.mac)
        .await
        .expect("remove the snmpset row");
    out.push(row(
        handler,
        &format!("{label} row write, subcast-snmp client"),
        client_set,
    ));
    out.push(row(
        handler,
        &format!("{label} row write, snmpset process"),
        tool_set,
    ));
    out.push(row(
        handler,
        &format!("{label} snmpget sysUpTime.0 process"),
        tool_get,
    ));
    out.push(row(
        handler,
        &format!("{label} 10 rows, one SET PDU (set_rows)"),
        ten_one_pdu,
    ));
    out.push(row(
        handler,
        &format!("{label} 10 rows, one SET each (install)"),
        ten_pdus,
    ));
    out.push(row(handler, &format!("{label} GET row, client"), get_row));
    out.push(row(
        handler,
        &format!("{label} GET sysUpTime.0, client (no handler)"),
        get_uptime,
    ));
    out.push(row(
        handler,
        &format!("{label} FDB walk (cache miss), client"),
        fdb_cold,
    ));
    out.push(row(handler, &format!("{label} delete row, client"), del));
}

async fn bench_handler(name: &str, handler: &Path, n: usize, out: &mut Vec<Row>) {
    let mut lab = Lab::new(2);
    lab.start_snmpd(handler);
    let c2 = SnmpConfig::v2c(lab.address(), COMMUNITY_RW);
    let c3 = SnmpConfig::v3_sha_aes(lab.address(), V3_USER, V3_AUTH, V3_PRIV);
    bench_version(name, "v2c", false, &c2, &lab, n, out).await;
    bench_version(name, "v3 authPriv", true, &c3, &lab, n, out).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let mut handlers: Vec<(String, PathBuf)> = vec![(
        "this build".into(),
        PathBuf::from(env!("CARGO_BIN_EXE_subcast-qbridge-passpersist")),
    )];
    if let Ok(p) = std::env::var("SUBCAST_SNMP_BENCH_BASELINE") {
        handlers.push(("baseline".into(), PathBuf::from(p)));
    }
    let mut rows = Vec::new();
    for (name, path) in &handlers {
        bench_handler(name, path, n, &mut rows).await;
    }
    println!("snmpd + subcast-qbridge-passpersist on a Linux bridge, loopback, {n} ops per row");
    println!(
        "| handler    | operation                                     |     n | p50 (ms) | p99 (ms) | max (ms) |"
    );
    println!(
        "|------------|-----------------------------------------------|-------|----------|----------|----------|"
    );
    for r in &rows {
        println!(
            "| {:<10} | {:<45} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} |",
            r.handler,
            r.name,
            r.n,
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
    }
    let json = json!({
        "bench": "snmp_latency",
        "ops_per_row": n,
        "handlers": handlers.iter().map(|(n, p)| json!({"name": n, "path": p.display().to_string()})).collect::<Vec<_>>(),
        "results": rows.iter().map(|r| json!({
            "handler": r.handler, "operation": r.name, "n": r.n,
            "p50_ms": ms(r.p50), "p99_ms": ms(r.p99), "max_ms": ms(r.max),
        })).collect::<Vec<_>>(),
    });
    let path = std::env::var("SUBCAST_BENCH_JSON").unwrap_or_else(|_| {
        format!(
            "{}/../target/bench/snmp-latency.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if let Some(dir) = Path::new(&path).parent() {
        std::fs::create_dir_all(dir).expect("create JSON directory");
    }
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write JSON");
    println!("JSON: {path}");
}
