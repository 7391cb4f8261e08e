//! `run TOPOLOGY --scenario multi-site`: one lab per site (its switches,
//! controller, agents and storage nodes), a gateway per site, a veth per
//! site link between the gateways (tbf-shaped), a put at one site and the
//! time until every site can read it; chunks and bytes per link from the
//! gateways, bytes per link also from the veths' own counters.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use labs::topology::sites::{SiteLink, SitesTopology};
use labs::{ChildGuard, Lab, LabOptions};
use serde_json::{Value, json};

use crate::bins;
use crate::stack::{NODE_PORT, Stack, node_yaml, random_hex, secret, tail, wait_for};

const LINK_PORT: u16 = 7400;
const NOTIFY_PORT: u16 = 7401;
const STATUS_PORT: u16 = 7402;

/// Options of the multi-site scenario.
#[derive(Args, Debug, Clone, Default)]
pub struct SitesArgs {
    /// multi-site: the site the object is put at (default: the first site).
    #[arg(long)]
    pub from: Option<String>,
    /// multi-site: site link A-B taken down before the put and brought back
    /// once every site has the object (shows the catch-up).
    #[arg(long)]
    pub cut: Option<String>,
    /// multi-site: site link A-B left out of the whole run (a
    /// spanning-tree-style baseline: one link of a loop switched off).
    #[arg(long)]
    pub disable: Option<String>,
}

struct Site {
    name: String,
    gw_host: String,
    gw_netns: String,
    // Drop order: gateway, nodes, stack, lab.
    gateway: Option<ChildGuard>,
    nodes: Vec<ChildGuard>,
    stack: Option<Stack>,
    lab: Lab,
}

impl Site {
    fn dir(&self) -> PathBuf {
        self.lab.workdir().to_path_buf()
    }
    fn status(&self) -> Result<Value> {
        let raw = labs::netns::in_netns(&self.gw_netns, || {
            let mut s = std::net::TcpStream::connect(("::1", STATUS_PORT))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /v1/sites HTTP/1.0\r\nHost: gw\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })??;
        let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        Ok(serde_json::from_str(body)?)
    }
    fn link<'a>(v: &'a Value, peer: &str) -> &'a Value {
        v["links"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["peer"] == peer))
            .unwrap_or(&Value::Null)
    }
}

/// Which link `spec` (`A-B` or `B-A`) names.
fn find_link(links: &[SiteLink], spec: &str) -> Result<usize> {
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| anyhow!("{spec:?}: write a site link as A-B"))?;
    links
        .iter()
        .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
        .ok_or_else(|| anyhow!("no site link {spec} in the topology"))
}

fn veth(i: usize, a_end: bool) -> String {
    format!("sl{i}{}", if a_end { "a" } else { "b" })
}

fn link_addr(i: usize, a_end: bool) -> String {
    format!("fd00:5e:{i:x}::{}", if a_end { 1 } else { 2 })
}

fn ip(args: &[&str]) -> Result<()> {
    let o = std::process::Command::new("ip").args(args).output()?;
    if !o.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

/// (tx bytes, rx bytes) of a veth.
fn if_bytes(netns: &str, dev: &str) -> Result<(u64, u64)> {
    let o = std::process::Command::new("ip")
        .args(["-n", netns, "-s", "-j", "link", "show", "dev", dev])
        .output()?;
    let v: Value = serde_json::from_slice(&o.stdout).context("ip -j -s link")?;
    let s = &v[0]["stats64"];
    Ok((
        s["tx"]["bytes"].as_u64().unwrap_or(0),
        s["rx"]["bytes"].as_u64().unwrap_or(0),
    ))
}

/// `check FILE` of a multi-site file.
pub fn check(file: &Path) -> Result<()> {
    let t = SitesTopology::from_yaml_file(file)?;
    let links = t.links()?;
    println!(
        "{}: {} sites, {} site links: OK",
        file.display(),
        t.sites.len(),
        links.len()
    );
    for name in t.sites.keys() {
        let s = t.site(name)?;
        println!(
            "  site {name}: {} switches, {} hosts, {} negotiating groups, gateway {}",
            s.switches.len(),
            s.hosts.len(),
            s.negotiating_groups.len(),
            t.gateway(name)?
        );
    }
    for l in &links {
        let rate = l
            .rate_mbit
            .map_or("unshaped".to_owned(), |r| format!("{r} Mbit/s"));
        println!("  link {}: {rate}", l.name());
    }
    Ok(())
}

/// The scenario; returns the JSON report.
pub fn run(
    topology: &Path,
    object_size: usize,
    a: &SitesArgs,
    locate: &bins::Locate,
) -> Result<Value> {
    if !labs::lab_tests_enabled() {
        bail!("a lab needs root and iproute2 (run as root, apt-get install iproute2)");
    }
    let topo = SitesTopology::from_yaml_file(topology)?;
    let all_links = topo.links()?;
    let disabled = a
        .disable
        .as_deref()
        .map(|s| find_link(&all_links, s))
        .transpose()?;
    let cut = a
        .cut
        .as_deref()
        .map(|s| find_link(&all_links, s))
        .transpose()?;
    if cut.is_some() && cut == disabled {
        bail!("--cut and --disable name the same link");
    }
    let from = a
        .from
        .clone()
        .unwrap_or_else(|| topo.sites.keys().next().cloned().unwrap_or_default());
    if !topo.sites.contains_key(&from) {
        bail!(
            "--from {from}: no such site (sites: {:?})",
            topo.sites.keys().collect::<Vec<_>>()
        );
    }
    let t_up = Instant::now();
    let first = topo.site(&from)?;
    let bins = bins::locate_for(locate, &first)?;
    let mut sites: BTreeMap<String, Site> = BTreeMap::new();
    for name in topo.sites.keys() {
        let t = topo.site(name)?;
        let lab = Lab::build(
            &t,
            LabOptions {
                close_mld: true,
                static_negotiating_groups: true,
                ..LabOptions::default()
            },
        )
        .with_context(|| format!("building site {name}"))?;
        let stack = Stack::start(&lab, &bins).with_context(|| format!("site {name}"))?;
        let gw_host = topo.gateway(name)?;
        let gw_netns = lab.host(&gw_host).netns.clone();
        sites.insert(
            name.clone(),
            Site {
                name: name.clone(),
                gw_host,
                gw_netns,
                gateway: None,
                nodes: Vec::new(),
                stack: Some(stack),
                lab,
            },
        );
    }
    // Site links: a veth between the two gateways, shaped at both ends.
    let links: Vec<(usize, &SiteLink)> = all_links
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != disabled)
        .collect();
    for (i, l) in &links {
        let (na, nb) = (&sites[&l.a].gw_netns, &sites[&l.b].gw_netns);
        ip(&[
            "-n",
            na,
            "link",
            "add",
            &veth(*i, true),
            "type",
            "veth",
            "peer",
            "name",
            &veth(*i, false),
            "netns",
            nb,
        ])?;
        for (ns, end) in [(na, true), (nb, false)] {
            let dev = veth(*i, end);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/64", link_addr(*i, end)),
                "dev",
                &dev,
                "nodad",
            ])?;
            ip(&["-n", ns, "link", "set", &dev, "up"])?;
            if let Some(r) = l.rate_mbit {
                let (bits, burst, limit) = labs::tbf_params(r);
                let o = std::process::Command::new("tc")
                    .args([
                        "-n",
                        ns,
                        "qdisc",
                        "replace",
                        "dev",
                        &dev,
                        "root",
                        "tbf",
                        "rate",
                        &format!("{bits}bit"),
                        "burst",
                        &burst.to_string(),
                        "limit",
                        &limit.to_string(),
                    ])
                    .output()?;
                if !o.status.success() {
                    bail!("tc on {dev}: {}", String::from_utf8_lossy(&o.stderr));
                }
            }
        }
        let s = random_hex(32)?;
        for site in [&l.a, &l.b] {
            secret(&sites[site].dir().join(format!("link-{i}.secret")), &s)?;
        }
    }
    // Nodes (reporting to their gateway) and gateways.
    let node_bin = bins.node.display().to_string();
    for site in sites.values_mut() {
        let dir = site.dir();
        secret(&dir.join("notify.secret"), &random_hex(32)?)?;
        let stack = site.stack.as_ref().expect("running");
        let t = site.lab.topology().clone();
        let mut hosts: Vec<String> = t
            .negotiating_groups
            .values()
            .flat_map(|g| g.members.iter().cloned())
            .collect();
        hosts.sort();
        hosts.dedup();
        let gw_ip = site.lab.host(&site.gw_host).ipv6;
        for h in &hosts {
            let info = site.lab.host(h);
            std::fs::create_dir_all(dir.join(format!("store-{h}")))?;
            let mut y = node_yaml(
                &site.lab,
                stack.flavor,
                &dir,
                stack.ctl_ip,
                h,
                Some(info.index),
                &hosts,
            );
            y += &format!(
                "  gateway: {{address: \"[{gw_ip}]:{NOTIFY_PORT}\", secret: \"{}\"}}\n",
                dir.join("notify.secret").display()
            );
            let p = dir.join(format!("node-{h}.yaml"));
            std::fs::write(&p, y)?;
            let log = std::fs::File::create(dir.join(format!("node-{h}.log")))?;
            let ps = p.display().to_string();
            site.nodes.push(site.lab.spawn_with(
                &info.netns,
                &[&node_bin, "--config", &ps, "serve"],
                |c| {
                    c.stderr(log).env("SUBCAST_LOG", "warn");
                },
            )?);
        }
        for h in &hosts {
            let ns = site.lab.host(h).netns.clone();
            let port = format!("sport = :{NODE_PORT}");
            wait_for(
                &format!("storage node on {h}"),
                Duration::from_secs(15),
                || {
                    let o = site.lab.exec(&ns, &["ss", "-Hlun", &port])?;
                    Ok(!o.stdout.is_empty())
                },
            )?;
        }
        let client = dir.join("client-gw.yaml");
        std::fs::write(
            &client,
            node_yaml(
                &site.lab,
                stack.flavor,
                &dir,
                stack.ctl_ip,
                &site.gw_host,
                None,
                &hosts,
            ),
        )?;
        let mut g = format!(
            "site: {}\nlisten: \"[::]:{LINK_PORT}\"\nnotify_listen: \"[::]:{NOTIFY_PORT}\"\nnotify_secret: notify.secret\nstatus: \"[::]:{STATUS_PORT}\"\nlinks:\n",
            site.name
        );
        for (i, l) in &links {
            let (peer, a_end) = if l.a == site.name {
                (&l.b, false)
            } else if l.b == site.name {
                (&l.a, true)
            } else {
                continue;
            };
            g += &format!(
                "  - {{peer: {peer}, address: \"[{}]:{LINK_PORT}\", secret: link-{i}.secret}}\n",
                link_addr(*i, a_end)
            );
        }
        let gp = dir.join("gateway.yaml");
        std::fs::write(&gp, g)?;
        let log = std::fs::File::create(dir.join("gateway.log"))?;
        let (cs, gs) = (client.display().to_string(), gp.display().to_string());
        site.gateway = Some(site.lab.spawn_with(
            &site.gw_netns,
            &[&node_bin, "--config", &cs, "gateway", "--sites", &gs],
            |c| {
                c.stderr(log).env("SUBCAST_LOG", "info");
            },
        )?);
    }
    let all_synced = |sites: &BTreeMap<String, Site>, skip: Option<usize>| -> Result<bool> {
        for s in sites.values() {
            let Ok(v) = s.status() else { return Ok(false) };
            for (i, l) in &links {
                if Some(*i) == skip || (l.a != s.name && l.b != s.name) {
                    continue;
                }
                let peer = if l.a == s.name { &l.b } else { &l.a };
                let x = Site::link(&v, peer);
                if x["up"] != true || x["synced"] != true {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let gw_logs = |sites: &BTreeMap<String, Site>| -> String {
        sites
            .values()
            .map(|s| {
                format!(
                    "--- gateway of {}\n{}\n",
                    s.name,
                    tail(&s.dir().join("gateway.log"))
                )
            })
            .collect()
    };
    wait_for("every site link up", Duration::from_secs(30), || {
        all_synced(&sites, None)
    })
    .map_err(|e| anyhow!("{e}\n{}", gw_logs(&sites)))?;
    let lab_up_ms = t_up.elapsed().as_millis();
    // The cut: down before the put, until every gateway saw it.
    if let Some(c) = cut {
        let l = &all_links[c];
        ip(&[
            "-n",
            &sites[&l.a].gw_netns,
            "link",
            "set",
            &veth(c, true),
            "down",
        ])?;
        wait_for("the cut link seen down", Duration::from_secs(15), || {
            for (s, peer) in [(&l.a, &l.b), (&l.b, &l.a)] {
                if Site::link(&sites[s].status()?, peer)["up"] != false {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
    }
    let wire_before: Vec<((u64, u64), (u64, u64))> = links
        .iter()
        .map(|(i, l)| {
            Ok((
                if_bytes(&sites[&l.a].gw_netns, &veth(*i, true))?,
                if_bytes(&sites[&l.b].gw_netns, &veth(*i, false))?,
            ))
        })
        .collect::<Result<_>>()?;
    // The put.
    let src = &sites[&from];
    let obj = src.dir().join("object.bin");
    let mut data = vec![0u8; object_size];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut data)?;
    std::fs::write(&obj, &data)?;
    let name = format!("sites/{}", &random_hex(6)?);
    let cfg_of = |s: &Site| s.dir().join("client-gw.yaml").display().to_string();
    let t0 = Instant::now();
    let out = src.lab.exec(
        &src.gw_netns,
        &[
            &node_bin,
            "--config",
            &cfg_of(src),
            "put",
            &obj.display().to_string(),
            "--name",
            &name,
            "--json",
            "-q",
        ],
    )?;
    if !out.status.success() {
        bail!(
            "put at {from} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let put_ms = t0.elapsed().as_millis();
    let put: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let chunks = object_size.div_ceil(1 << 20) + 1;
    // Convergence: the site's gateway saw the manifest stored in its site
    // (the gateway stores a manifest only after its chunks).
    let mut converged: BTreeMap<String, Option<u128>> =
        sites.keys().map(|s| (s.clone(), None)).collect();
    let deadline = Duration::from_secs(60 + (object_size as u64 >> 20) * 3);
    // Sites the object can reach without the cut link.
    let mut reach = vec![from.clone()];
    let mut k = 0;
    while k < reach.len() {
        for (i, l) in &links {
            if Some(*i) == cut {
                continue;
            }
            for (x, y) in [(&l.a, &l.b), (&l.b, &l.a)] {
                if *x == reach[k] && !reach.contains(y) {
                    reach.push(y.clone());
                }
            }
        }
        k += 1;
    }
    let mut converge = |targets: &[String]| {
        wait_for("the sites to hold the object", deadline, || {
            for s in sites.values() {
                if converged[&s.name].is_some() || !targets.contains(&s.name) {
                    continue;
                }
                let v = s.status()?;
                if v["manifests"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x["name"] == name.as_str()))
                {
                    converged.insert(s.name.clone(), Some(t0.elapsed().as_millis()));
                }
            }
            Ok(targets.iter().all(|t| converged[t].is_some()))
        })
    };
    let r = converge(&reach);
    let mut errors = Vec::new();
    if let Err(e) = r {
        errors.push(format!("{e}"));
    }
    // No chunk circulates: every backlog empty and the counters still.
    let counters = |sites: &BTreeMap<String, Site>| -> Result<Vec<u64>> {
        let mut v = Vec::new();
        for s in sites.values() {
            let st = s.status()?;
            for l in st["links"].as_array().into_iter().flatten() {
                v.push(l["counters"]["chunks_sent"].as_u64().unwrap_or(0));
                v.push(l["backlog"].as_u64().unwrap_or(0));
            }
            v.push(st["held_manifests"].as_u64().unwrap_or(0));
        }
        Ok(v)
    };
    let wait_quiet = |sites: &BTreeMap<String, Site>| -> Result<bool> {
        let mut last = counters(sites)?;
        let mut still = 0;
        let _ = wait_for("the links to go quiet", Duration::from_secs(30), || {
            let now = counters(sites)?;
            still = if now == last { still + 1 } else { 0 };
            last = now;
            // Quiet for 1 s of polls (20 polls of 50 ms), nothing queued.
            Ok(still >= 20)
        });
        Ok(still >= 20)
    };
    let snapshot = |sites: &BTreeMap<String, Site>| -> Result<BTreeMap<String, Value>> {
        sites
            .iter()
            .map(|(k, s)| Ok((k.clone(), s.status()?)))
            .collect()
    };
    if cut.is_some() {
        wait_quiet(&sites)?;
    }
    let st = snapshot(&sites)?;
    // The cut link comes back: its catch-up.
    let mut cut_report = Value::Null;
    if let Some(c) = cut {
        let l = &all_links[c];
        let sent = |st: &BTreeMap<String, Value>, s: &str, p: &str| {
            Site::link(&st[s], p)["counters"]["chunks_sent"]
                .as_u64()
                .unwrap_or(0)
        };
        let (ab0, ba0) = (sent(&st, &l.a, &l.b), sent(&st, &l.b, &l.a));
        // What has to cross the link: every chunk, for each site that
        // could not be reached without it.
        let missing = (sites.len() - reach.len()) as u64 * chunks as u64;
        // IPv6 drops the addresses of a link that goes down: again.
        let ns = &sites[&l.a].gw_netns;
        ip(&["-n", ns, "link", "set", &veth(c, true), "up"])?;
        let addr = format!("{}/64", link_addr(c, true));
        ip(&[
            "-n",
            ns,
            "addr",
            "replace",
            &addr,
            "dev",
            &veth(c, true),
            "nodad",
        ])?;
        let t_back = Instant::now();
        wait_for(
            "the cut link back and caught up",
            Duration::from_secs(30),
            || {
                if !all_synced(&sites, None)? {
                    return Ok(false);
                }
                Ok(sites.values().all(|s| {
                    s.status().is_ok_and(|v| {
                        v["links"]
                            .as_array()
                            .is_some_and(|a| a.iter().all(|x| x["backlog"] == 0))
                    })
                }))
            },
        )?;
        let all: Vec<String> = sites.keys().cloned().collect();
        if let Err(e) = converge(&all) {
            errors.push(format!("after the cut link came back: {e}"));
        }
        wait_quiet(&sites)?;
        let st2 = snapshot(&sites)?;
        let (ab, ba) = (sent(&st2, &l.a, &l.b) - ab0, sent(&st2, &l.b, &l.a) - ba0);
        cut_report = json!({
            "link": l.name(), "catchup_ms": t_back.elapsed().as_millis(),
            "missing_at_restore": missing, "chunks_ab_after_restore": ab, "chunks_ba_after_restore": ba,
            "only_missing_moved": ab + ba <= missing,
        });
    }
    let quiet = wait_quiet(&sites)?;
    let st = snapshot(&sites)?;
    // Gets, and the per-link table.
    let mut sites_v = serde_json::Map::new();
    let mut all_ok = errors.is_empty();
    for s in sites.values() {
        let out_f = s.dir().join("got.bin");
        let o = s.lab.exec(
            &s.gw_netns,
            &[
                &node_bin,
                "--config",
                &cfg_of(s),
                "get",
                &name,
                "-o",
                &out_f.display().to_string(),
                "-q",
            ],
        )?;
        let same = o.status.success() && std::fs::read(&out_f).is_ok_and(|b| b == data);
        all_ok &= same && converged[&s.name].is_some();
        if !same {
            errors.push(format!(
                "get at {}: {}",
                s.name,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        sites_v.insert(
            s.name.clone(),
            json!({
                "gateway": s.gw_host, "get": {"ok": same}, "converged_ms": converged[&s.name],
                "local_chunks": st[&s.name]["local_chunks"],
            }),
        );
    }
    let mut links_v = serde_json::Map::new();
    let mut at_most_once = true;
    for (k, (i, l)) in links.iter().enumerate() {
        let ab = Site::link(&st[&l.a], &l.b)["counters"].clone();
        let ba = Site::link(&st[&l.b], &l.a)["counters"].clone();
        let (wa1, wb1) = (
            if_bytes(&sites[&l.a].gw_netns, &veth(*i, true))?,
            if_bytes(&sites[&l.b].gw_netns, &veth(*i, false))?,
        );
        let (wa0, wb0) = wire_before[k];
        let g = |v: &Value, f: &str| v[f].as_u64().unwrap_or(0);
        let (cab, cba) = (g(&ab, "chunks_sent"), g(&ba, "chunks_sent"));
        at_most_once &= cab <= chunks as u64 && cba <= chunks as u64;
        links_v.insert(l.name(), json!({
            "rate_mbit": l.rate_mbit,
            "chunks_ab": cab, "chunks_ba": cba,
            "bytes_ab": g(&ab, "bytes_sent"), "bytes_ba": g(&ba, "bytes_sent"),
            "refused_known_at_b": g(&ba, "refused_known"), "refused_known_at_a": g(&ab, "refused_known"),
            "wire_bytes_ab": wa1.0 - wa0.0, "wire_bytes_ba": wb1.0 - wb0.0,
            "received_by_b_bytes_wire": wb1.1 - wb0.1,
            "catchup_queued_ab": g(&ab, "catchup_queued"), "catchup_queued_ba": g(&ba, "catchup_queued"),
        }));
    }
    let cut_ok = cut_report.is_null() || cut_report["only_missing_moved"] == true;
    let ok = all_ok && at_most_once && quiet && cut_ok;
    if !ok {
        errors.push(gw_logs(&sites));
    }
    let report = json!({
        "ok": ok, "scenario": "multi-site", "from": from, "object": name, "object_size": object_size,
        "chunks": chunks, "put_ms": put_ms, "put": put,
        "sites": sites_v, "site_links": links_v,
        "disabled_link": disabled.map(|i| all_links[i].name()),
        "cut": cut_report,
        "checks": {"each_chunk_at_most_once_per_direction": at_most_once, "quiet_after_convergence": quiet},
        "lab_up_ms": lab_up_ms, "errors": errors,
    });
    for s in sites.values_mut() {
        drop(s.gateway.take());
        s.nodes.clear();
        if let Some(st) = s.stack.take() {
            st.stop();
        }
    }
    Ok(report)
}
