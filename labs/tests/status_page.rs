//! The controller's status page in a real browser: the seed three-switch
//! lab (`labs/topologies/seed-three-switch.yaml`, Linux bridges A, B, C),
//! the real controller in switch A's namespace and a real agent per switch
//! (placed as `subcast-lab run` places them), two live leases and one
//! refusal requested over UDP as a storage node would. Headless Chromium
//! (Debian's `chromium`), run inside the controller's namespace, loads
//! `/status` and `/status/lease/{id}`; the test checks the DOM against
//! what the controller's inspection command and the bridges' MDB say, and
//! keeps screenshots in `target/test-artefacts/` (status-page.png,
//! status-lease.png).
//!
//! Needs root, `chromium` and the daemons (`cargo build -p subcast-controller
//! -p subcast-agent --bins`; `cargo test --workspace` builds them); skipped
//! otherwise, failing instead under SUBCAST_LABS_REQUIRED=1.

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use labs::{ChildGuard, Lab, LabOptions, Topology};
use serde_json::Value;
use subcast_proto::{
    GrantOutcome, Keyring, Member, Message, Opener, RendezvousRequest, ReplayGuard, Sealer, now_us,
};

#[path = "common/one_switch.rs"]
mod one_switch;
use one_switch::{key, key_hex, logs, required, wait_for};

const POOL: &str = "ff05::5c:2:0/112";
const TOKEN: &str = "status-page-admin-token-0123456789";
const API: &str = "http://[::1]:8411";
/// The two leases' target sets and the refused request's target.
const LEASES: [[&str; 2]; 2] = [["X1", "X4"], ["X2", "X8"]];
const NOT_A_MEMBER: &str = "fd00:5c:dead::1";

/// `chromium` on PATH, or `None` with a skip line; a failure under
/// SUBCAST_LABS_REQUIRED.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chromium"))
            .find(|c| c.is_file())
    });
    assert!(
        found.is_some() || !required(),
        "{} is set but `chromium` is not installed: apt-get install chromium \
         (scripts/test.sh installs it)",
        labs::REQUIRE_ENV
    );
    if found.is_none() {
        println!("SKIP status page: chromium is not installed (apt-get install chromium)");
    }
    found
}

/// The target directory (the test binary is in target/debug/deps).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

/// The daemons next to this test's binary, or `None` with a skip line; a
/// failure under SUBCAST_LABS_REQUIRED.
fn daemons() -> Option<[PathBuf; 2]> {
    // The profile directory (target/debug or target/release).
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.ancestors().nth(2).expect("profile dir");
    let bins = ["subcast-controller", "subcast-agent"].map(|b| dir.join(b));
    let missing: Vec<String> = bins
        .iter()
        .filter(|b| !b.is_file())
        .map(|b| b.display().to_string())
        .collect();
    assert!(
        missing.is_empty() || !required(),
        "{} is set but {missing:?} are missing: run `cargo build -p subcast-controller \
         -p subcast-agent --bins` (cargo test --workspace does)",
        labs::REQUIRE_ENV
    );
    if !missing.is_empty() {
        println!("SKIP status page: daemons not built: {missing:?}");
        return None;
    }
    Some(bins)
}

fn members_yaml(lab: &Lab, indent: &str) -> String {
    lab.hosts()
        .iter()
        .map(|(m, h)| {
            format!(
                "{indent}- {{ name: {m}, ipv6: \"{}\", mac: \"{}\" }}\n",
                h.ipv6,
                h.mac_string()
            )
        })
        .collect()
}

fn ng0(lab: &Lab) -> Ipv6Addr {
    lab.topology().group_address("NG0").expect("NG0")
}

/// As `subcast-lab run` writes it: every switch's agent at its in-band
/// management address, one agent key.
fn controller_yaml(lab: &Lab) -> String {
    let mut y = format!(
        "controller:\n  id: 1\n  udp_listen: \"[::]:7411\"\n  database: \":memory:\"\n  \
         agent_timeout_ms: 5000\nkeys:\n  - {{ id: 1, hex: \"{}\" }}\n  - {{ id: 2, hex: \"{}\" }}\n  \
         - {{ id: 101, hex: \"{}\" }}\nvlans:\n  - {{ id: 0, pool: [\"{POOL}\"] }}\nswitches:\n",
        key_hex(1),
        key_hex(2),
        key_hex(101)
    );
    for (i, (name, sw)) in lab.switches().iter().enumerate() {
        y += &format!(
            "  - {{ name: {name}, id: {}, vlans: [0], agent: {{ address: \"[{}]:7410\", key_id: 1, agent_key_id: 101 }} }}\n",
            i + 1,
            sw.mgmt_ipv6
        );
    }
    y += &format!(
        "groups:\n  - name: NG0\n    vlan: 0\n    parent: \"{}\"\n    members:\n{}",
        ng0(lab),
        members_yaml(lab, "      ")
    );
    y += &format!(
        "leases: {{ default_ms: 60000, max_ms: 60000, warm_ms: 0 }}\nfanout: {{ retransmit_ms: 20, attempts: 5 }}\n\
         api:\n  listen: \"[::1]:8411\"\n  tokens:\n    - {{ role: admin, name: lab, token: {TOKEN} }}\n\
         rendezvous:\n  key_ids: [2]\n"
    );
    y
}

/// The agents' key files (written once, before any agent starts).
fn write_keys(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, n) in [("k1.key", 1), ("k101.key", 101)] {
        let p = dir.join(name);
        std::fs::write(&p, key_hex(n)).expect("key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn agent_yaml(lab: &Lab, dir: &Path, switch: &str, id: usize, ctl: Ipv6Addr) -> String {
    format!(
        "switch_id: {id}\nbackend:\n  kind: linux-bridge\n  bridge: br0\ncontroller: \"[{ctl}]:7411\"\n\
         listen: \"[{}]:7410\"\nkey: {{ id: 101, file: \"{d}/k101.key\" }}\n\
         controller_keys:\n  - {{ id: 1, file: \"{d}/k1.key\" }}\nrendezvous_range: \"{POOL}\"\n\
         heartbeat_interval_ms: 500\nparent_groups:\n  - address: \"{}\"\n    vlan: 0\n    members:\n{}",
        lab.switch(switch).mgmt_ipv6,
        ng0(lab),
        members_yaml(lab, "      "),
        d = dir.display(),
    )
}

/// Asks the controller for a rendezvous group as a storage node does
/// (sealed UDP), resending until the answer comes.
fn request(
    (sock, sealer, opener): &mut (UdpSocket, Sealer, Opener),
    ctl: SocketAddr,
    id: u64,
    parent: Ipv6Addr,
    targets: &[Ipv6Addr],
) -> GrantOutcome {
    let req = Message::RendezvousRequest(RendezvousRequest {
        request_id: id,
        vlan: 0,
        parent,
        lifetime_ms: 60_000,
        targets: targets.iter().copied().map(Member::Ipv6).collect(),
    });
    let mut buf = vec![0u8; 9216];
    for _ in 0..10 {
        sock.send_to(&sealer.seal(&req, now_us()), ctl)
            .expect("send to the controller");
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let d = opener
                .open(&buf[..n], now_us())
                .unwrap_or_else(|e| panic!("controller answer refused: {e}"));
            if let Message::RendezvousGrant(g) = d.message
                && g.request_id == id
            {
                return g.outcome;
            }
        }
    }
    panic!("no answer from the controller to request {id}");
}

/// Runs headless Chromium in `netns` with `args` then `url`; waits for it
/// to exit (at most 60 s) and returns its stdout.
fn chromium_run(chromium: &Path, netns: &str, profile: &Path, args: &[&str], url: &str) -> String {
    let out_path = profile.with_extension("out");
    let err_path = profile.with_extension("err");
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--no-first-run", "--disable-extensions", "--disable-sync"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("chromium status") {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish within 60 s:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium {args:?} {url}: {status}\n{err}");
    println!("chromium {args:?}: {:?}", t0.elapsed());
    std::fs::read_to_string(&out_path).expect("chromium stdout")
}

/// Width and height of a PNG, checking its signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "PNG too short: {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn status_page_in_headless_chromium_shows_the_lab() {
    if !labs::lab_tests_enabled() {
        println!("SKIP status page: needs root and iproute2");
        return;
    }
    let Some(chromium) = chromium() else { return };
    let Some([ctl_bin, agent_bin]) = daemons() else {
        return;
    };
    let topo = Topology::from_yaml_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/seed-three-switch.yaml"
        ))
        .expect("seed topology"),
    )
    .expect("topology");
    let lab = Lab::build(
        &topo,
        LabOptions {
            close_mld: true,
            static_negotiating_groups: true,
            ..Default::default()
        },
    )
    .expect("lab");
    let dir = lab.workdir().to_owned();
    // The controller where `subcast-lab run` puts it: switch A's namespace.
    let ctl_ns = lab.switch("A").netns.clone();
    let ctl_ip = lab.switch("A").mgmt_ipv6;
    let spawn = |ns: &str, args: &[&str], log: &str| -> ChildGuard {
        let f = std::fs::File::create(dir.join(log)).expect("log file");
        let out = f.try_clone().expect("log file");
        lab.spawn_with(ns, args, move |c| {
            c.stderr(f)
                .stdout(out)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1");
        })
        .expect("spawn")
    };
    let ctl_cfg = dir.join("controller.yaml");
    std::fs::write(&ctl_cfg, controller_yaml(&lab)).expect("config");
    let ctl_cfg = ctl_cfg.display().to_string();
    let mut procs = vec![spawn(
        &ctl_ns,
        &[ctl_bin.to_str().unwrap(), "serve", "--config", &ctl_cfg],
        "controller.log",
    )];
    wait_for("the controller", &dir, Duration::from_secs(15), || {
        std::fs::read_to_string(dir.join("controller.log"))
            .is_ok_and(|s| s.contains("subcast-controller running"))
    });
    write_keys(&dir);
    for (i, name) in lab.switches().keys().enumerate() {
        let p = dir.join(format!("agent-{name}.yaml"));
        std::fs::write(&p, agent_yaml(&lab, &dir, name, i + 1, ctl_ip)).expect("config");
        procs.push(spawn(
            &lab.switch(name).netns,
            &[
                agent_bin.to_str().unwrap(),
                "run",
                "--config",
                p.to_str().unwrap(),
            ],
            &format!("agent-{name}.log"),
        ));
    }
    // The inspection command, run where the API listens, as JSON.
    let inspect = |what: &str| -> Value {
        let out = lab
            .exec(
                &ctl_ns,
                &[
                    ctl_bin.to_str().unwrap(),
                    what,
                    "--json",
                    "--config",
                    &ctl_cfg,
                ],
            )
            .unwrap_or_else(|e| panic!("subcast-controller {what}: {e}"));
        serde_json::from_slice(&out.stdout).expect("inspection JSON")
    };
    wait_for("three agents up", &dir, Duration::from_secs(20), || {
        inspect("agents")
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["state"] == "up"))
    });

    // Two leases and a refusal, over UDP from a host as a storage node.
    let sock = lab.udp_socket("X9", 0, &[]).expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut client = (
        sock,
        Sealer::new(key(2, 2), 0x5747, now_us()),
        Opener::new(Keyring::new([key(2, 2)]), ReplayGuard::default()),
    );
    let ctl_addr = SocketAddr::new(ctl_ip.into(), 7411);
    let ip = |h: &str| lab.host(h).ipv6;
    // (lease id, group), in LEASES order.
    let mut leases: Vec<(u64, String)> = Vec::new();
    for (i, targets) in LEASES.iter().enumerate() {
        let t: Vec<Ipv6Addr> = targets.iter().map(|h| ip(h)).collect();
        match request(&mut client, ctl_addr, i as u64 + 1, ng0(&lab), &t) {
            GrantOutcome::Granted {
                group, lease_id, ..
            } => leases.push((lease_id, group.to_string())),
            GrantOutcome::Refused { reason, detail } => {
                panic!(
                    "lease {targets:?} refused: {reason:?} {detail}\n{}",
                    logs(&dir)
                )
            }
        };
    }
    let stranger: Ipv6Addr = NOT_A_MEMBER.parse().unwrap();
    assert!(matches!(
        request(&mut client, ctl_addr, 3, ng0(&lab), &[ip("X1"), stranger]),
        GrantOutcome::Refused { .. }
    ));

    // The overview, as the browser builds it.
    let profile = tempfile_dir(&dir, "chromium");
    let url = format!("{API}/status?token={TOKEN}");
    let dom = chromium_run(&chromium, &ctl_ns, &profile, &["--dump-dom"], &url);
    std::fs::write(dir.join("status.html"), &dom).unwrap();
    for s in ["A", "B", "C"] {
        assert!(dom.contains(&format!("<tr data-switch=\"{s}\">")), "{dom}");
    }
    assert_eq!(
        dom.matches("<span class=\"up\">up</span>").count(),
        3,
        "{dom}"
    );
    assert!(dom.contains("3 of 3 switches up · 2 leases"), "{dom}");
    for (id, group) in &leases {
        assert!(
            dom.contains(&format!("<a href=\"/status/lease/{id}\">{id}</a>")),
            "lease {id}: {dom}"
        );
        assert!(dom.contains(group.as_str()), "{dom}");
    }
    assert!(dom.contains("<tr data-reason=\"not-a-member\">"), "{dom}");
    assert!(dom.contains(NOT_A_MEMBER), "{dom}");
    // Occupancy as the controller counts it.
    for b in inspect("agents").as_array().unwrap() {
        let (used, limit) = (&b["occupancy"], &b["budget"]);
        assert!(
            dom.contains(&format!("{used} / {limit}")),
            "{}: {used} / {limit}: {dom}",
            b["name"]
        );
    }

    // One lease's per-switch table: what each agent ACKed, as the
    // inspection command reports it, and port counts the bridges' MDB
    // agree with.
    let (first, group) = &leases[0];
    let lease_url = format!("{API}/status/lease/{first}?token={TOKEN}");
    let page = chromium_run(&chromium, &ctl_ns, &profile, &["--dump-dom"], &lease_url);
    std::fs::write(dir.join("status-lease.html"), &page).unwrap();
    let targets = LEASES[0].join(",");
    assert!(
        page.contains(&format!("Rendezvous to {targets}: ports (ACKed)")),
        "{page}"
    );
    assert!(
        page.contains(&format!("<td id=\"targets\">{}</td>", LEASES[0].join(", "))),
        "{page}"
    );
    assert!(page.contains(&format!("NG0 ({})", ng0(&lab))), "{page}");
    let groups = inspect("groups");
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap_or_else(|| panic!("group {group} not in {groups:#}"));
    for p in g["switches"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        assert!(
            page.contains(&format!("<th data-switch=\"{name}\">")),
            "{page}"
        );
        if let Some(tx) = p["txid"].as_str() {
            assert!(
                page.contains(&format!("<span class=\"mono\">{tx}</span>")),
                "{name}'s txid {tx}: {page}"
            );
        }
        let mdb = lab
            .mdb_show(name)
            .expect("mdb")
            .into_iter()
            .filter(|e| e.group.to_string() == *group)
            .count();
        println!("switch {name}: ACKed {} ports, MDB holds {mdb}", p["ports"]);
        if p["state"] == "installed" {
            assert_eq!(p["ports"], mdb, "switch {name}: ACK vs MDB");
            let n = if mdb == 1 { "port" } else { "ports" };
            assert!(
                page.contains(&format!("<b>{mdb}</b> {n}")),
                "{name}: {page}"
            );
        }
    }

    // Screenshots, kept as test artefacts.
    let art = target_dir().join("test-artefacts");
    std::fs::create_dir_all(&art).expect("artefact dir");
    for (file, url) in [("status-page.png", &url), ("status-lease.png", &lease_url)] {
        let png = art.join(file);
        let _ = std::fs::remove_file(&png);
        chromium_run(
            &chromium,
            &ctl_ns,
            &profile,
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1280,1024",
                "--hide-scrollbars",
            ],
            url,
        );
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(png_size(&bytes), (1280, 1024), "{}", png.display());
        // A blank 1280x1024 page compresses to a few kB.
        assert!(
            bytes.len() > 20_000,
            "{} is only {} bytes",
            png.display(),
            bytes.len()
        );
        println!("screenshot {} ({} bytes)", png.display(), bytes.len());
    }
    drop(procs);
}

/// A fresh directory under the lab's work directory (removed with it).
fn tempfile_dir(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("profile dir");
    p
}
