//! The systemd units of `deploy/systemd/`: every `ExecStart` names a
//! subcast binary, a subcommand and options the binary has (checked
//! against its `--help`), the hardening options are there (the agent alone
//! keeps CAP_NET_ADMIN and AF_NETLINK), and `systemd-analyze verify`
//! accepts the units without a warning when it is installed (its binary
//! paths pointed at target/debug).
//!
//! Needs the daemons (`cargo build -p subcast-controller -p subcast-agent
//! -p subcast-node --bins`); skipped otherwise, failing instead under
//! SUBCAST_LABS_REQUIRED=1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const UNITS: [&str; 3] = ["subcast-controller", "subcast-agent", "subcast-node"];

fn required() -> bool {
    std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let missing: Vec<&str> = UNITS
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    assert!(
        missing.is_empty() || !required(),
        "{} is set but {missing:?} are not built: run `cargo build -p subcast-controller \
         -p subcast-agent -p subcast-node --bins`",
        labs::REQUIRE_ENV
    );
    if !missing.is_empty() {
        println!("SKIP: daemons not built: {missing:?}");
        return None;
    }
    Some(dir.to_owned())
}

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/systemd/{name}.service"))
}

/// `[Service]` keys of a unit file (the last value of a repeated key).
fn service_keys(text: &str) -> BTreeMap<String, String> {
    let mut section = "";
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]"
            && let Some((k, v)) = line.split_once('=')
        {
            out.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

fn help(bin: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?} --help: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn units_start_real_commands_with_hardening() {
    let Some(bins) = bin_dir() else { return };
    for name in UNITS {
        let text = std::fs::read_to_string(unit_path(name)).expect("unit file");
        let keys = service_keys(&text);
        let exec = keys.get("ExecStart").expect("ExecStart");
        let mut words = exec.split_whitespace();
        let path = words.next().unwrap();
        assert_eq!(path, format!("/usr/local/bin/{name}"), "{name}: {exec}");
        let args: Vec<&str> = words.collect();
        let sub = args[0];
        assert!(
            help(&bins.join(name), &[]).contains(&format!("  {sub}")),
            "{name}: no subcommand {sub:?}"
        );
        let h = help(&bins.join(name), &[sub]);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(h.contains(flag), "{name} {sub}: no option {flag}:\n{h}");
        }
        for (k, v) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("ProtectKernelModules", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("StateDirectory", name),
            ("User", "subcast"),
        ] {
            assert_eq!(keys.get(k).map(String::as_str), Some(v), "{name}: {k}");
        }
        let caps = keys
            .get("CapabilityBoundingSet")
            .expect("CapabilityBoundingSet");
        let families = keys
            .get("RestrictAddressFamilies")
            .expect("RestrictAddressFamilies");
        if name == "subcast-agent" {
            assert_eq!(caps, "CAP_NET_ADMIN");
            assert!(families.contains("AF_NETLINK"), "{families}");
        } else {
            assert_eq!(caps, "", "{name} needs no capability");
            assert!(!families.contains("AF_NETLINK"), "{families}");
        }
        if name != "subcast-node" {
            assert_eq!(
                keys.get("ExecReload").map(String::as_str),
                Some("/bin/kill -HUP $MAINPID"),
                "{name} reloads on SIGHUP"
            );
        }
    }
}

#[test]
fn systemd_analyze_verify_has_no_complaint() {
    let Some(bins) = bin_dir() else { return };
    let Some(analyze) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("systemd-analyze"))
            .find(|f| f.is_file())
    }) else {
        // systemd is not in scripts/test.sh's packages: the parse test
        // above still runs.
        println!("SKIP systemd_analyze_verify: systemd-analyze not installed");
        return;
    };
    let tmp = std::env::temp_dir().join(format!("subcast-units-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut files = Vec::new();
    for name in UNITS {
        let text = std::fs::read_to_string(unit_path(name)).expect("unit file");
        let text = text.replace("/usr/local/bin/", &format!("{}/", bins.display()));
        let p = tmp.join(format!("{name}.service"));
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .args(&files)
        .output()
        .expect("systemd-analyze runs");
    let _ = std::fs::remove_dir_all(&tmp);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}: {said}",
        out.status
    );
}
