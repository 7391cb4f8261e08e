//! `subcast-agent default-config` prints a config that the agent's own
//! loader accepts as written, and that `check-config` accepts once its key
//! files exist (only their directory is changed here).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_subcast-agent");

fn default_config() -> String {
    let out = Command::new(BIN)
        .arg("default-config")
        .output()
        .expect("subcast-agent runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn default_config_validates_as_written() {
    let text = default_config();
    let c = subcast_agent::config::Config::parse(&text, Path::new("agent.yaml"))
        .unwrap_or_else(|e| panic!("default-config does not validate: {e}\n{text}"));
    assert_eq!(c.switch_name(), "s1");
    assert!(c.metrics.is_some(), "the default serves metrics");
}

#[test]
fn check_config_accepts_the_default_with_its_key_files() {
    let dir = std::env::temp_dir().join(format!("subcast-agent-default-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = default_config().replace("/etc/subcast/", &format!("{}/", dir.display()));
    for (k, byte) in [("agent-1.key", "a1"), ("controller.key", "c1")] {
        std::fs::write(dir.join(k), byte.repeat(32)).unwrap();
    }
    let cfg = dir.join("agent.yaml");
    std::fs::write(&cfg, &text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("subcast-agent runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "check-config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}
