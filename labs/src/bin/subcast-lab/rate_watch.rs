//! Every MDB change of every Linux bridge during the `rate` load, from
//! `bridge monitor mdb` in each switch namespace: replayed in order, they give the
//! exact most rendezvous groups a bridge held at once (a poll can miss a peak).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labs::{ChildGuard, Lab};

use crate::rate_load::{in_pool, pool_entries};

/// Outside the pool: added and deleted on every bridge to know that its monitor
/// has written everything up to now.
const MARKER: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 0xffff, 0xfffd);

/// Running monitors.
pub struct MdbEvents {
    procs: Vec<(String, ChildGuard, PathBuf)>,
    /// Pool entries per bridge when the monitors were known to run.
    start: BTreeMap<String, BTreeSet<(Ipv6Addr, String)>>,
}

/// What one bridge did.
#[derive(Debug, Default, Clone)]
pub struct BridgeChanges {
    pub max_groups: usize,
    pub adds: u64,
    pub dels: u64,
}

fn marker_deletions(path: &PathBuf) -> usize {
    let needle = format!("grp {MARKER}");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Deleted") && l.contains(&needle))
        .count()
}

impl MdbEvents {
    pub fn start(lab: &Lab) -> Result<MdbEvents> {
        let mut procs = Vec::new();
        for (name, sw) in lab.switches() {
            if sw.ovs.is_some() {
                continue;
            }
            let path = lab.workdir().join(format!("rate-mdb-{name}.txt"));
            let f = std::fs::File::create(&path)?;
            let g = lab.spawn_with(
                &sw.netns,
                &["stdbuf", "-oL", "bridge", "monitor", "mdb"],
                |c| {
                    c.stdout(f).stderr(Stdio::null());
                },
            )?;
            procs.push((name.clone(), g, path));
        }
        let mut w = MdbEvents {
            procs,
            start: BTreeMap::new(),
        };
        w.sync(lab, "start")?;
        for (name, _, _) in &w.procs {
            w.start.insert(name.clone(), pool_entries(lab, name)?);
        }
        Ok(w)
    }

    /// Add and delete the marker on every bridge until each monitor wrote it.
    fn sync(&self, lab: &Lab, when: &str) -> Result<()> {
        let before: Vec<usize> = self.procs.iter().map(|p| marker_deletions(&p.2)).collect();
        let mut pending: Vec<usize> = (0..self.procs.len()).collect();
        let t0 = Instant::now();
        while !pending.is_empty() {
            for &i in &pending {
                let sw = lab.switch(&self.procs[i].0);
                let port = &sw.ports.first().context("a switch without ports")?.name;
                lab.mdb_add(&sw.name, port, MARKER)?;
                let _ = lab.mdb_del(&sw.name, port, MARKER);
            }
            std::thread::sleep(Duration::from_millis(5));
            pending.retain(|&i| marker_deletions(&self.procs[i].2) == before[i]);
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("`bridge monitor mdb` did not report a marker entry within 10 s ({when})");
            }
        }
        Ok(())
    }

    /// Stop; replay each bridge's events from its starting entries.
    pub fn stop(self, lab: &Lab) -> Result<BTreeMap<String, BridgeChanges>> {
        self.sync(lab, "stop")?;
        let mut out = BTreeMap::new();
        for (sw, mut g, path) in self.procs {
            g.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(1));
            let text = std::fs::read_to_string(&path)?;
            let mut now = self.start.get(&sw).cloned().unwrap_or_default();
            let groups = |s: &BTreeSet<(Ipv6Addr, String)>| {
                s.iter().map(|(g, _)| *g).collect::<BTreeSet<_>>().len()
            };
            let mut c = BridgeChanges {
                max_groups: groups(&now),
                ..BridgeChanges::default()
            };
            for line in text.lines() {
                let toks: Vec<&str> = line.split_whitespace().collect();
                let Some((deleted, port, group)) = crate::putget::mdb_event(&toks) else {
                    continue;
                };
                if !in_pool(&group) {
                    continue;
                }
                let e = (group, port.to_string());
                if deleted {
                    if now.remove(&e) {
                        c.dels += 1;
                    }
                } else if now.insert(e) {
                    c.adds += 1;
                    c.max_groups = c.max_groups.max(groups(&now));
                }
            }
            out.insert(sw, c);
        }
        Ok(out)
    }
}
