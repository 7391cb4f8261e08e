//! Reload through the API (`POST /v1/reload`, `subcast-controller
//! reload`) and by SIGHUP to the real binary: applied whole, refused
//! naming the key, or rejected with `check-config`'s positioned errors;
//! leases survive every outcome.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use subcast_controller::cli::{Client, url_for};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn post_reload(api: &str, token: &str) -> (u16, Value) {
    let c = Client::new(api, token).unwrap();
    let (s, body) = c.post_text("/v1/reload").await.unwrap();
    (
        s,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn status_with(api: &str, token: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(format!("{api}/v1/agents"))
        .bearer_auth(token)
        .send()
        .await;
    r.map_or(0, |r| r.status().as_u16())
}

const LATE: &str = "late-admin-token-0123456789";

fn with_late_token(yaml: &str) -> String {
    yaml.replace(
        "  tokens:\n",
        &format!("  tokens:\n    - {{ role: admin, name: late, token: \"{LATE}\" }}\n"),
    )
}

#[tokio::test]
async fn post_reload_applies_refuses_or_rejects_and_leases_survive() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controller.yaml");
    let agents = three_agents().await;
    let yaml = config_yaml(&addrs(&agents), ":memory:", "ff15::5c:1:0/126");
    write(&file, &yaml);
    let (cfg, _) = subcast_controller::config::load_file(&file).unwrap();
    let run = subcast_controller::start(cfg).await.unwrap();
    let api = url_for(run.api_addr);
    let ctl = run.controller.clone();
    let mut r = req("chunks-0", &["h1", "h2"]);
    r.lifetime_ms = Some(60_000);
    let lease = ctl.rendezvous(r).await.unwrap();

    // Storage nodes may not reload.
    assert_eq!(post_reload(&api, NODE).await.0, 403);

    // A token added: applied; it works at once.
    assert_eq!(status_with(&api, LATE).await, 401);
    write(&file, &with_late_token(&yaml));
    let (s, v) = post_reload(&api, ADMIN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["applied"], true);
    assert_eq!(v["changes"][0], "token late (admin) added", "{v}");
    assert_eq!(status_with(&api, LATE).await, 200);

    // Errors in the file: as check-config prints them; nothing applied.
    let broken = with_late_token(&yaml).replace("name: s2,", "name: s1,");
    write(&file, &broken);
    let (s, v) = post_reload(&api, ADMIN).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["applied"], false);
    let p = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|p| p.contains(": error: "))
        .unwrap();
    let want = format!("{}:", file.display());
    assert!(
        p.starts_with(&want) && p.contains(": error: switch name \"s1\" is used twice"),
        "{p}"
    );
    let line_col: Vec<&str> = p[want.len()..].splitn(3, ':').take(2).collect();
    assert!(line_col.iter().all(|n| n.parse::<u32>().is_ok()), "{p}");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&check.stderr).contains(p),
        "the same text as check-config"
    );
    write(&file, "vlans: [\n");
    let (s, v) = post_reload(&api, ADMIN).await;
    assert_eq!(s, 422, "{v}");

    // A key that cannot change live: refused, named, nothing applied
    // (the warm_ms change in the same file is not applied either).
    let moved = with_late_token(&yaml)
        .replace(
            "listen: \"127.0.0.1:0\"\n  max_body",
            "listen: \"127.0.0.1:1\"\n  max_body",
        )
        .replace("warm_ms: 0", "warm_ms: 5");
    write(&file, &moved);
    let (s, v) = post_reload(&api, ADMIN).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["refused"][0]["key"], "api.listen", "{v}");
    assert!(
        v["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("restart")
    );
    assert_eq!(ctl.config().warm, Duration::ZERO);
    assert_eq!(
        status_with(&api, LATE).await,
        200,
        "the last good config stays"
    );

    // The pool grows through the command.
    let e = ctl.rendezvous(req("chunks-0", &["h3"])).await;
    assert!(e.is_ok());
    for t in ["h4", "h5"] {
        let _ = ctl.rendezvous(req("chunks-0", &[t])).await;
    }
    let e = ctl.rendezvous(req("chunks-0", &["h6"])).await.unwrap_err();
    assert_eq!(e.reason.name(), "pool-exhausted");
    write(
        &file,
        &with_late_token(&yaml).replace(
            "pool: [\"ff15::5c:1:0/126\"]",
            "pool: [\"ff15::5c:1:0/126\", \"ff15::5c:2:0/126\"]",
        ),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .args(["reload", "--api", &api, "--token", ADMIN])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("reloaded") && text.contains("pool grows"),
        "{text}"
    );
    assert!(ctl.rendezvous(req("chunks-0", &["h6"])).await.is_ok());
    let leases = ctl.leases().await;
    assert!(
        leases
            .iter()
            .any(|l| l.id == lease.id && l.group == lease.group)
    );
    // A refusal makes the command fail with the reasons.
    write(&file, &moved);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .args(["reload", "--api", &api, "--token", ADMIN])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("api.listen: the HTTP listener"),
        "{err}"
    );
    let m = ctl.metrics_text().await;
    assert!(
        m.contains("subcast_controller_reloads_total{outcome=\"applied\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("subcast_controller_reloads_total{outcome=\"invalid\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("subcast_controller_reloads_total{outcome=\"refused\"} 2"),
        "{m}"
    );
    run.stop();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the controller if the test ends early (a failed assertion), so
/// that no process outlives the test.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The controller's log, line by line as it writes it: `wait_for` wakes on
/// each new line instead of polling the text.
struct Log {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Log {
    fn follow(out: std::process::ChildStdout) -> Log {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let t = text.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut all = t.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
                drop(all);
                let _ = tx.send(line);
            }
        });
        Log { text, lines }
    }

    fn all(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits (10 s at most) until a line containing `needle` is written.
    async fn wait_for(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.all().contains(needle) {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(_)) => {}
                _ => panic!("no log line with {needle:?}:\n{}", self.all()),
            }
        }
    }
}

/// SIGHUP to the real binary re-reads its file.
#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controller.yaml");
    let agents = three_agents().await;
    let port = free_port();
    let yaml = config_yaml(&addrs(&agents), "ctl.sqlite", "ff15::5c:1:0/120").replace(
        "listen: \"127.0.0.1:0\"\n  max_body",
        &format!("listen: \"127.0.0.1:{port}\"\n  max_body"),
    );
    write(&file, &yaml);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .args(["serve", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut log = Log::follow(child.stdout.take().expect("piped stdout"));
    let mut child = KillOnDrop(Some(child));
    let api = format!("http://127.0.0.1:{port}");
    let read_log = || log.all();
    let t0 = Instant::now();
    while status_with(&api, ADMIN).await != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "API never came up:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write(&file, &with_late_token(&yaml));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let t0 = Instant::now();
    while status_with(&api, LATE).await != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not reloaded:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new token can work a moment before the reload's log line is
    // written (the engine applies it, then the signal handler logs): wait
    // for the line itself.
    log.wait_for("SIGHUP: config reloaded").await;
    // A broken file: logged with its position, nothing applied.
    write(
        &file,
        &with_late_token(&yaml).replace("key_ids: [2]", "key_ids: [7]"),
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    log.wait_for("SIGHUP: reload not applied").await;
    // The message runs over several lines, read one at a time: wait for
    // the one that names the error too.
    log.wait_for("rendezvous key id 7 is not defined").await;
    let l = log.all();
    assert!(
        l.contains(&format!("{}:", file.display()))
            && l.contains("error: rendezvous key id 7 is not defined"),
        "{l}"
    );
    assert_eq!(status_with(&api, LATE).await, 200);
    let running = child.0.as_mut().map(|c| c.try_wait().unwrap().is_none());
    assert_eq!(running, Some(true), "still running");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.0.take().expect("the controller").wait().unwrap();
    assert!(st.success(), "{st:?}");
}
