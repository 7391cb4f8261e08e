//! Every HTTP endpoint and error, through the real router (tower oneshot),
//! with simulated agents over real UDP behind it.

mod common;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    run: subcast_controller::Running,
    router: axum::Router,
}

const OTHER: &str = "test-other-node-token-0123456789";

impl Api {
    async fn new(agents: &[FakeAgent], pool: &str) -> Api {
        Self::with_yaml(&config_yaml(&addrs(agents), ":memory:", pool)).await
    }

    /// With a second storage-node token (`OTHER`, at most 2 leases).
    async fn with_other(agents: &[FakeAgent], pool: &str) -> Api {
        let yaml = config_yaml(&addrs(agents), ":memory:", pool).replace(
            "  tokens:\n",
            &format!("  tokens:\n    - {{ role: storage-node, name: other, token: \"{OTHER}\", max_leases: 2 }}\n"),
        );
        Self::with_yaml(&yaml).await
    }

    async fn with_yaml(yaml: &str) -> Api {
        let cfg = subcast_controller::config::load_str(yaml, std::path::Path::new("."))
            .unwrap()
            .0;
        let run = subcast_controller::start(cfg).await.unwrap();
        let router = subcast_controller::api::router(run.controller.clone());
        Api { run, router }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(s) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(s))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn post(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/rendezvous",
            Some(token),
            Some(body.to_string()),
        )
        .await
    }
}

#[tokio::test]
async fn rendezvous_lifecycle_over_http() {
    let agents = three_agents().await;
    let api = Api::new(&agents, "ff15::5c:1:0/120").await;
    let (s, v) = api.post(NODE, json!({"parent": "ff15::5c:0:1", "targets": ["h1", "fd00:5c::102", "02:5c:00:00:01:03"], "lifetime_ms": 5000})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "live");
    assert_eq!(v["targets"], json!(["h1", "h2", "h3"]));
    let group = v["group"].as_str().unwrap().to_owned();
    let lease = v["lease_id"].as_str().unwrap().to_owned();
    assert!(
        agents
            .iter()
            .all(|a| a.installed() == vec![group.parse::<std::net::Ipv6Addr>().unwrap()])
    );

    let (s, v) = api.call(Method::GET, "/v1/leases", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["lease_id"], lease.as_str());
    assert_eq!(v[0]["requester"], "nodes");

    let (s, v) = api
        .call(
            Method::GET,
            &format!("/v1/audit?lease={lease}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");

    let (s, v) = api
        .call(
            Method::DELETE,
            &format!("/v1/rendezvous/{lease}"),
            Some(NODE),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["released"], true);
    assert_eq!(v["clear"].as_array().unwrap().len(), 3);
    assert!(agents.iter().all(|a| a.installed().is_empty()));
    let (s, v) = api
        .call(
            Method::DELETE,
            &format!("/v1/rendezvous/{lease}"),
            Some(NODE),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "not-found");
    let (s, v) = api
        .call(Method::DELETE, "/v1/rendezvous/abc", Some(NODE), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("decimal"));
    api.run.stop();
}

#[tokio::test]
async fn status_endpoints() {
    let agents = three_agents().await;
    let api = Api::new(&agents, "ff15::5c:1:0/120").await;
    agents[0].hello(api.run.udp_addr).await;
    agents[0].heartbeat(api.run.udp_addr).await;
    assert!(
        until(std::time::Duration::from_secs(1), || async {
            api.run
                .controller
                .query(|e, now| {
                    e.agents(now)[0]
                        .seen
                        .as_ref()
                        .is_some_and(|a| a.heartbeat.is_some())
                })
                .await
                .unwrap_or(false)
        })
        .await
    );
    let (s, v) = api.call(Method::GET, "/v1/agents", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["state"], "up");
    assert_eq!(v[0]["software_version"], "fake-agent 0");
    assert_eq!(v[0]["backend"], "linux-bridge");
    assert_eq!(v[1]["state"], "unknown");
    let (s, v) = api.call(Method::GET, "/v1/groups", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["name"], "chunks-0");
    assert_eq!(v[0]["members"].as_array().unwrap().len(), 6);
    assert_eq!(v[1]["members"][1]["ipv6"], "fd00:5c::103");
    let (s, v) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["agents_up"], 1);
    assert_eq!(v["agents_configured"], 3);
    // Metrics after one grant and one refusal.
    assert_eq!(
        api.post(ADMIN, json!({"parent": "chunks-0", "targets": ["h1"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.post(ADMIN, json!({"parent": "chunks-1", "targets": ["h2"]}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, v) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("subcast_controller_leases_granted_total{path=\"http\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("subcast_controller_leases_refused_total{reason=\"not-a-member\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("subcast_controller_grant_latency_seconds_count{kind=\"miss\"} 1"),
        "{text}"
    );
    assert!(text.contains("subcast_controller_agents_up 1"), "{text}");
    let (s, v) = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/v1/agents",
        "/v1/groups",
        "/v1/leases",
        "/v1/rendezvous",
        "/v1/rendezvous/{lease}",
        "/healthz",
        "/metrics",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p} missing from openapi");
    }
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());
    api.run.stop();
}

#[tokio::test]
async fn auth_by_role() {
    let agents = three_agents().await;
    let api = Api::new(&agents, "ff15::5c:1:0/120").await;
    for uri in ["/v1/agents", "/v1/groups", "/v1/leases"] {
        let (s, v) = api.call(Method::GET, uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer")
        );
        let (s, _) = api
            .call(Method::GET, uri, Some("wrong-token-wrong-token"), None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        let (s, v) = api.call(Method::GET, uri, Some(NODE), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(v["error"], "forbidden");
        assert_eq!(
            api.call(Method::GET, uri, Some(ADMIN), None).await.0,
            StatusCode::OK
        );
    }
    let (s, _) = api
        .call(
            Method::POST,
            "/v1/rendezvous",
            None,
            Some(json!({"parent": "chunks-0", "targets": ["h1"]}).to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(api.run.controller.leases().await.is_empty());
    api.run.stop();
}

#[tokio::test]
async fn request_errors_are_json_with_the_right_status() {
    let agents = three_agents().await;
    let api = Api::new(&agents, "ff15::5c:1:0/128").await;
    // Bad JSON.
    let (s, v) = api
        .call(
            Method::POST,
            "/v1/rendezvous",
            Some(NODE),
            Some("{\"parent\": ".into()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "bad-json");
    // Wrong fields.
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targetz": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("targetz"), "{v}");
    // Missing content type.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/rendezvous")
        .header(header::AUTHORIZATION, format!("Bearer {NODE}"))
        .body(Body::from("{}"))
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Oversized (limit 4096 in the test config).
    let big: Vec<String> = (0..2000).map(|i| format!("h{i}")).collect();
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": big}))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "payload-too-large");
    // Unknown group.
    let (s, v) = api
        .post(NODE, json!({"parent": "ff15::dead", "targets": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "unknown-parent");
    assert!(v["message"].as_str().unwrap().contains("known groups"));
    // Non-member.
    let (s, v) = api
        .post(
            NODE,
            json!({"parent": "chunks-1", "targets": ["h1", "fd00:5c::104"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"], "not-a-member");
    assert!(v["message"].as_str().unwrap().contains("fd00:5c::104"));
    // Lifetime too long.
    let (s, v) = api
        .post(
            NODE,
            json!({"parent": "chunks-1", "targets": ["h1"], "lifetime_ms": 999999}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"], "lifetime-too-long");
    // Exhausted pool (a /128 holds one address).
    assert_eq!(
        api.post(NODE, json!({"parent": "chunks-1", "targets": ["h1"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-1", "targets": ["h3"]}))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "pool-exhausted");
    // Unknown endpoint.
    let (s, v) = api
        .call(Method::GET, "/v2/nothing", Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "not-found");
    api.run.stop();
}

#[tokio::test]
async fn agent_refusal_and_silence_over_http() {
    let agents = three_agents().await;
    let api = Api::new(&agents, "ff15::5c:1:0/120").await;
    agents[1].set(Behaviour::Nak(subcast_proto::NakReason::NotASubset));
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(v["error"], "agent-refused");
    assert!(v["switch"].as_str().unwrap().starts_with("s2"), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not-a-subset"),
        "{v}"
    );
    // An agent whose table is full: a table-full refusal naming it (the
    // requester falls back to another transport).
    agents[1].set(Behaviour::Nak(subcast_proto::NakReason::TableFull));
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "table-full");
    assert!(v["switch"].as_str().unwrap().starts_with("s2"), "{v}");
    agents[1].set(Behaviour::Silent);
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(v["error"], "agent-unreachable");
    assert!(v["switch"].as_str().unwrap().starts_with("s2"), "{v}");
    api.run.stop();
}

#[tokio::test]
async fn a_client_that_goes_away_mid_grant_leaks_nothing() {
    let agents = three_agents().await;
    // Two lost datagrams: the grant takes 10 + 20 ms of retransmission.
    agents[1].set(Behaviour::LoseFirst(2));
    let api = Api::new(&agents, "ff15::5c:1:0/120").await;
    let ctl = api.run.controller.clone();
    let call = api.post(
        NODE,
        json!({"parent": "chunks-0", "targets": ["h1"], "lifetime_ms": 300}),
    );
    // The client gives up after 5 ms: its handler is dropped mid-grant.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(5), call)
            .await
            .is_err()
    );
    // The grant runs to completion anyway, the lease lives out its 300 ms
    // and is cleared; nothing stays pending, the address comes back.
    assert!(
        until(std::time::Duration::from_secs(2), || async {
            ctl.leases()
                .await
                .iter()
                .any(|l| l.state == subcast_controller::leases::LeaseState::Live)
        })
        .await,
        "the grant completed without its client"
    );
    assert!(
        until(std::time::Duration::from_secs(3), || async {
            ctl.leases().await.is_empty() && ctl.pool_in_use(10).await == 0
        })
        .await,
        "leaked: {:?}",
        ctl.leases().await
    );
    assert!(agents.iter().all(|a| a.installed().is_empty()));
    api.run.stop();
}

#[tokio::test]
async fn leases_are_released_only_by_their_owner_or_an_admin() {
    let agents = three_agents().await;
    let api = Api::with_other(&agents, "ff15::5c:1:0/120").await;
    let (s, v) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": ["h1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let lease = v["lease_id"].as_str().unwrap().to_owned();
    let uri = format!("/v1/rendezvous/{lease}");
    let (s, v) = api.call(Method::DELETE, &uri, Some(OTHER), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["message"].as_str().unwrap().contains("owner"), "{v}");
    assert_eq!(api.run.controller.leases().await.len(), 1, "still held");
    let (s, v) = api.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK, "an admin may: {v}");
    api.run.stop();
}

#[tokio::test]
async fn a_token_holds_at_most_its_quota_and_ids_are_not_guessable() {
    let agents = three_agents().await;
    let api = Api::with_other(&agents, "ff15::5c:1:0/120").await;
    let mut ids = Vec::new();
    for t in ["h1", "h2"] {
        let (s, v) = api
            .post(OTHER, json!({"parent": "chunks-0", "targets": [t]}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["lease_id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    let (s, v) = api
        .post(OTHER, json!({"parent": "chunks-0", "targets": ["h3"]}))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"], "quota-exceeded");
    // Another token is not affected.
    let (s, _) = api
        .post(NODE, json!({"parent": "chunks-0", "targets": ["h3"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // 56 random bits under the controller id: not one after the other.
    assert_eq!(ids[0] >> 56, 1);
    let low = |x: u64| x & ((1 << 56) - 1);
    assert!(low(ids[0]).abs_diff(low(ids[1])) > 1 << 32, "{ids:?}");
    api.run.stop();
}
