//! The inspection API (`/v1/subsets` with per-switch ACKs and agreement,
//! `/v1/leases` with ports, `/v1/refusals`, `/v1/audit` filters) and the
//! inspection commands (`subcast-controller agents|leases|groups|audit|
//! refusals`) run as the real binary against a controller with simulated
//! agents over real UDP.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;
use subcast_controller::cli::Client;

async fn cli(api: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .args(args)
        .args(["--api", api, "--token", ADMIN])
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn what_the_controller_knows_per_switch_and_the_commands_that_show_it() {
    let agents = three_agents().await;
    let cfg = config(&addrs(&agents), ":memory:", "ff15::5c:1:0/120");
    let run = subcast_controller::start(cfg).await.unwrap();
    let api = subcast_controller::cli::url_for(run.api_addr);
    let ctl = run.controller.clone();
    let c = Client::new(&api, ADMIN).unwrap();
    for a in &agents {
        a.hello(run.udp_addr).await;
    }
    let mut r = req("chunks-0", &["h1", "h2"]);
    r.lifetime_ms = Some(30_000);
    let live = ctl.rendezvous(r).await.unwrap();

    // Per switch: the ACKed transaction and port count; they agree.
    let v: Value = c.get("/v1/subsets", &[]).await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let g = &v[0];
    assert_eq!(g["group"], live.group.to_string());
    assert_eq!(g["agree"], true, "{g}");
    assert_eq!(g["round"], 1);
    let sw = g["switches"].as_array().unwrap();
    assert_eq!(sw.len(), 3);
    for p in sw {
        assert_eq!(p["state"], "installed");
        assert_eq!(p["instruction"], "SET_SUBSET");
        assert_eq!(p["ports"], 1, "the simulated agents ACK one port");
        assert!(p["txid"].as_str().unwrap().parse::<u64>().unwrap() > 0);
        assert!(p.get("problem").is_none_or(Value::is_null), "{p}");
    }
    let v: Value = c.get("/v1/leases", &[]).await.unwrap();
    let inst = v[0]["installed"].as_array().unwrap();
    assert_eq!(inst.len(), 3);
    assert!(inst.iter().all(|i| i["ports"] == 1), "{v}");

    // A refusal, and a group s3 does not answer (it went silent): the
    // others clear it, s3 may still hold it.
    assert!(
        ctl.rendezvous(req("chunks-0", &["h1", "nobody"]))
            .await
            .is_err()
    );
    agents[2].set(Behaviour::Silent);
    let e = ctl.rendezvous(req("chunks-0", &["h5"])).await.unwrap_err();
    assert_eq!(e.reason.name(), "agent-unreachable");
    let short = ctl
        .groups()
        .await
        .into_iter()
        .find(|g| g.targets == ["h5"])
        .expect("the failed group is being cleared");
    assert!(
        until(Duration::from_secs(3), || async {
            ctl.groups().await.iter().any(|g| {
                g.group == short.group
                    && g.switches[2]
                        .problem
                        .as_deref()
                        .is_some_and(|p| p.contains("did not answer its CLEAR"))
            })
        })
        .await,
        "{:#?}",
        ctl.groups().await
    );
    let v: Value = c.get("/v1/refusals", &[]).await.unwrap();
    assert_eq!(v[0]["reason"], "not-a-member", "{v}");
    assert_eq!(v[0]["targets"][1], "nobody");
    assert_eq!(v[1]["reason"], "agent-unreachable", "{v}");
    assert!(v[1]["switch"].as_str().unwrap().starts_with("s3 "), "{v}");

    // Audit filters: switch, group, since.
    let t0 = subcast_proto::now_us() / 1000;
    let rows: Vec<Value> = c
        .get("/v1/audit", &[("switch", "s3".into())])
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r["switch_id"] == 3));
    assert!(
        rows.iter()
            .any(|r| r["outcome"] == "silent" && r["group"] == short.group.to_string()),
        "{rows:?}"
    );
    let rows: Vec<Value> = c
        .get("/v1/audit", &[("group", live.group.to_string())])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "one install per switch: {rows:?}");
    let rows: Vec<Value> = c
        .get("/v1/audit", &[("since_ms", (t0 + 60_000).to_string())])
        .await
        .unwrap();
    assert!(rows.is_empty());
    let e = c
        .get::<Value>("/v1/audit", &[("switch", "s9".into())])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no switch \"s9\""), "{e}");

    // The commands, as an admin runs them.
    let (ok, out, err) = cli(&api, &["agents"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("SWITCH"), "{out}");
    assert!(
        out.contains("linux-bridge") && out.contains("1/512"),
        "{out}"
    );
    let (ok, out, err) = cli(&api, &["leases"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&live.id.to_string()), "{out}");
    assert!(out.contains("s1:1 s2:1 s3:1"), "{out}");
    assert!(out.contains("h1,h2"), "{out}");
    let (ok, out, _) = cli(&api, &["groups"]).await;
    assert!(ok);
    let line = out
        .lines()
        .find(|l| l.starts_with(&live.group.to_string()))
        .unwrap();
    assert!(line.contains(" yes "), "{out}");
    assert!(
        out.contains(&format!("{} on s3: did not answer its CLEAR", short.group)),
        "{out}"
    );
    let (ok, out, _) = cli(&api, &["groups", "--switch", "s2"]).await;
    assert!(ok);
    assert!(
        out.contains("SET_SUBSET") && out.contains("installed"),
        "{out}"
    );
    let (ok, out, _) = cli(&api, &["audit", "--since", "10m", "--switch", "s3"]).await;
    assert!(ok);
    assert!(out.contains("silent") && out.contains(" s3 "), "{out}");
    let (ok, out, _) = cli(&api, &["refusals"]).await;
    assert!(ok);
    assert!(
        out.contains("not-a-member") && out.contains("h1,nobody"),
        "{out}"
    );
    assert!(out.contains("agent-unreachable  s3 "), "{out}");
    let (ok, out, _) = cli(&api, &["leases", "--json"]).await;
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["lease_id"], live.id.to_string());
    // Errors say what to do.
    let (ok, _, err) = cli(&api, &["audit", "--since", "yesterday"]).await;
    assert!(!ok && err.contains("30s, 15m"), "{err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_subcast-controller"))
        .args(["agents", "--api", &api, "--token", "wrong"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("401"), "{err}");
    tokio::time::sleep(Duration::from_millis(1)).await;
    run.stop();
}
