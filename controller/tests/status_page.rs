//! The status page (`/status`, `/status/lease/{id}`) served by a real
//! controller with simulated agents over real UDP: what it shows, who
//! may see it, and that what requesters typed is escaped.

mod common;
use common::*;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::Value;
use subcast_controller::cli::Client;

const EVIL: &str = "<script>alert(1)</script>";

async fn get(
    url: &str,
    header: Option<(reqwest::header::HeaderName, String)>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some((k, v)) = header {
        r = r.header(k, v);
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_page_shows_switches_leases_their_per_switch_table_and_refusals() {
    let agents = three_agents().await;
    let cfg = config(&addrs(&agents), ":memory:", "ff15::5c:1:0/120");
    let run = subcast_controller::start(cfg).await.unwrap();
    let api = subcast_controller::cli::url_for(run.api_addr);
    let ctl = run.controller.clone();
    for a in &agents {
        a.hello(run.udp_addr).await;
    }
    let mut r = req("chunks-0", &["h1", "h2"]);
    r.lifetime_ms = Some(30_000);
    let l1 = ctl.rendezvous(r).await.unwrap();
    let mut r = req("chunks-1", &["h3", "h5"]);
    r.lifetime_ms = Some(30_000);
    let l2 = ctl.rendezvous(r).await.unwrap();
    // A requester's text reaches the page through a refusal.
    let e = ctl
        .rendezvous(req("chunks-0", &["h1", EVIL]))
        .await
        .unwrap_err();
    assert_eq!(e.reason.name(), "not-a-member");

    // No token, a wrong one, a storage node's: short HTML pages, no data.
    for (url, want) in [
        (format!("{api}/status"), StatusCode::UNAUTHORIZED),
        (
            format!("{api}/status?token=wrong"),
            StatusCode::UNAUTHORIZED,
        ),
        (format!("{api}/status?token={NODE}"), StatusCode::FORBIDDEN),
        (
            format!("{api}/status/lease/{}", l1.id),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, h, body) = get(&url, None).await;
        assert_eq!(status, want, "{url}: {body}");
        assert!(h[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        assert!(body.contains("<h1>"), "{body}");
        assert!(!body.contains(&l1.group.to_string()), "{body}");
        assert!(!body.contains("data-switch"), "{body}");
    }

    // ?token=: the page, and the token as a strict, HttpOnly cookie.
    let (status, h, page) = get(&format!("{api}/status?token={ADMIN}"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let cookie = h[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("subcast_token={ADMIN};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    for s in ["s1", "s2", "s3"] {
        assert!(
            page.contains(&format!("<tr data-switch=\"{s}\">")),
            "{page}"
        );
    }
    assert_eq!(
        page.matches("<span class=\"up\">up</span>").count(),
        3,
        "{page}"
    );
    // Two leases on s1..s3: occupancy 2 of the budget, as /v1/budgets says.
    let c = Client::new(&api, ADMIN).unwrap();
    let budgets: Value = c.get("/v1/budgets", &[]).await.unwrap();
    let b0 = &budgets[0];
    assert_eq!(b0["occupancy"], 2, "{budgets}");
    assert!(page.contains(&format!("2 / {}", b0["budget"])), "{page}");
    for l in [&l1, &l2] {
        assert!(
            page.contains(&format!("<a href=\"/status/lease/{0}\">{0}</a>", l.id)),
            "{page}"
        );
        assert!(page.contains(&l.group.to_string()), "{page}");
    }
    assert!(page.contains("chunks-1 (ff15::5c:0:2)"), "{page}");
    assert!(page.contains("s1:1 s2:1 s3:1"), "ports per switch: {page}");
    assert!(page.contains("<tr data-reason=\"not-a-member\">"), "{page}");
    // Escaped: never markup.
    assert!(!page.contains(EVIL), "{page}");
    assert!(
        page.contains("h1, &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );

    // The cookie alone (as a browser sends it back) and the bearer header.
    let (status, h, again) = get(
        &format!("{api}/status"),
        Some((COOKIE, format!("subcast_token={ADMIN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(h.get(SET_COOKIE).is_none());
    assert!(again.contains("data-switch=\"s1\""));
    let (status, _, lease) = get(
        &format!("{api}/status/lease/{}", l1.id),
        Some((AUTHORIZATION, format!("Bearer {ADMIN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{lease}");

    // The lease's table: target set, parent, and per switch what its
    // agent ACKed (the transaction /v1/subsets reports).
    assert!(lease.contains("<td id=\"targets\">h1, h2</td>"), "{lease}");
    assert!(lease.contains("chunks-0 (ff15::5c:0:1)"), "{lease}");
    assert!(
        lease.contains("h1, h2, h3, h4, h5, h6"),
        "parent members: {lease}"
    );
    let subsets: Value = c
        .get("/v1/subsets", &[("group", l1.group.to_string())])
        .await
        .unwrap();
    let sw = subsets[0]["switches"].as_array().unwrap();
    assert_eq!(sw.len(), 3);
    for p in sw {
        let name = p["name"].as_str().unwrap();
        assert!(
            lease.contains(&format!("<th data-switch=\"{name}\">")),
            "{lease}"
        );
        let tx = p["txid"].as_str().unwrap();
        assert!(
            lease.contains(&format!("<span class=\"mono\">{tx}</span>")),
            "{name}'s txid {tx}: {lease}"
        );
    }
    assert!(
        lease.contains("Rendezvous to h1,h2: ports (ACKed)"),
        "{lease}"
    );
    assert_eq!(lease.matches("<b>1</b> port<").count(), 3, "{lease}");
    assert_eq!(
        lease.matches("<span class=\"ok\">yes</span>").count(),
        4,
        "the group and each switch agree: {lease}"
    );

    // A lease that is not there.
    let (status, _, gone) = get(&format!("{api}/status/lease/999999?token={ADMIN}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    assert!(gone.contains("No lease 999999"), "{gone}");
    run.stop();
}

#[tokio::test]
async fn an_agent_never_heard_shows_unknown_and_an_empty_controller_renders() {
    let agents = three_agents().await;
    let cfg = config(&addrs(&agents), ":memory:", "ff15::5c:1:0/120");
    let run = subcast_controller::start(cfg).await.unwrap();
    let api = subcast_controller::cli::url_for(run.api_addr);
    agents[0].hello(run.udp_addr).await;
    let ctl = run.controller.clone();
    assert!(
        until(std::time::Duration::from_secs(3), || async {
            ctl.agents().await.iter().any(|a| a.up)
        })
        .await
    );
    let (status, _, page) = get(&format!("{api}/status?token={ADMIN}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page.matches("<span class=\"up\">up</span>").count(),
        1,
        "{page}"
    );
    assert_eq!(
        page.matches("<span class=\"unknown\">unknown</span>")
            .count(),
        2,
        "{page}"
    );
    assert!(page.contains("1 of 3 switches up"), "{page}");
    assert!(
        page.contains("no leases") && page.contains("no refusals"),
        "{page}"
    );
    run.stop();
}
