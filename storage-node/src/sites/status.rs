//! The gateway's status: `GET /v1/sites` (JSON) and `GET /metrics`
//! (Prometheus text), and the `sites` command that reads the former.

use super::gateway::Shared;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The status as JSON.
pub fn snapshot(sh: &Shared) -> serde_json::Value {
    let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
    let links: Vec<_> = st
        .router
        .links
        .iter()
        .map(|l| {
            serde_json::json!({
                "peer": l.peer, "up": l.up, "synced": l.synced, "backlog": l.backlog(),
                "counters": l.counters,
            })
        })
        .collect();
    serde_json::json!({
        "site": st.site,
        "local_chunks": st.router.local_count(),
        "held_manifests": st.router.held_count(),
        "stores_failed": st.stores_failed,
        "fetches_failed": st.fetches_failed,
        "manifests": st.local_manifests,
        "links": links,
    })
}

/// Prometheus text of the status.
pub fn metrics_text(v: &serde_json::Value) -> String {
    let site = v["site"].as_str().unwrap_or("");
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(
            out,
            "# HELP subcast_site_{name} {help}\n# TYPE subcast_site_{name} {kind}"
        );
    };
    gauge(
        &mut out,
        "local_chunks",
        "Chunks and manifests stored in this site.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "subcast_site_local_chunks{{site=\"{site}\"}} {}",
        v["local_chunks"]
    );
    let links = v["links"].as_array().cloned().unwrap_or_default();
    let fields = [
        ("chunks_sent", "counter", "Chunks sent on the link."),
        ("bytes_sent", "counter", "Bytes sent on the link (frames)."),
        ("chunks_received", "counter", "Chunks received on the link."),
        (
            "bytes_received",
            "counter",
            "Bytes of chunks received on the link.",
        ),
        (
            "refused_known",
            "counter",
            "Chunks received that were already known here.",
        ),
        ("catchup_queued", "counter", "Chunks queued by catch-ups."),
        ("sessions", "counter", "Link sessions established."),
    ];
    for (f, kind, help) in fields {
        let name = format!("link_{f}{}", if kind == "counter" { "_total" } else { "" });
        gauge(&mut out, &name, help, kind);
        for l in &links {
            let _ = writeln!(
                out,
                "subcast_site_{name}{{site=\"{site}\",peer=\"{}\"}} {}",
                l["peer"].as_str().unwrap_or(""),
                l["counters"][f]
            );
        }
    }
    for (f, help) in [
        ("backlog", "Chunks queued on the link."),
        ("up", "1 while the link has a session."),
    ] {
        gauge(&mut out, &format!("link_{f}"), help, "gauge");
        for l in &links {
            let x = match &l[f] {
                serde_json::Value::Bool(b) => u64::from(*b).to_string(),
                o => o.to_string(),
            };
            let _ = writeln!(
                out,
                "subcast_site_link_{f}{{site=\"{site}\",peer=\"{}\"}} {x}",
                l["peer"].as_str().unwrap_or("")
            );
        }
    }
    out
}

pub(super) async fn serve(addr: SocketAddr, sh: Arc<Shared>) -> anyhow::Result<()> {
    let s2 = sh.clone();
    let app = axum::Router::new()
        .route(
            "/v1/sites",
            axum::routing::get(move || {
                let sh = sh.clone();
                async move { axum::Json(snapshot(&sh)) }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let sh = s2.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics_text(&snapshot(&sh)),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the gateway status on {addr}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "status server stopped");
        }
    });
    Ok(())
}

/// `subcast-node sites --status ADDR`: reads a gateway's status.
pub async fn fetch(addr: SocketAddr) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway status at {addr}: {e}"))?;
    s.write_all(b"GET /v1/sites HTTP/1.0\r\nHost: gateway\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok(serde_json::from_str(body)?)
}

/// The status as a table.
pub fn render(v: &serde_json::Value) -> String {
    let mut out = format!(
        "site {}: {} chunks stored, {} manifests held back\n",
        v["site"].as_str().unwrap_or("?"),
        v["local_chunks"],
        v["held_manifests"]
    );
    let _ = writeln!(
        out,
        "{:<10} {:<5} {:>8} {:>12} {:>8} {:>12} {:>8} {:>8}",
        "peer", "up", "sent", "bytes sent", "recv", "bytes recv", "refused", "backlog"
    );
    for l in v["links"].as_array().into_iter().flatten() {
        let c = &l["counters"];
        let _ = writeln!(
            out,
            "{:<10} {:<5} {:>8} {:>12} {:>8} {:>12} {:>8} {:>8}",
            l["peer"].as_str().unwrap_or(""),
            l["up"].to_string(),
            c["chunks_sent"].to_string(),
            c["bytes_sent"].to_string(),
            c["chunks_received"].to_string(),
            c["bytes_received"].to_string(),
            c["refused_known"].to_string(),
            l["backlog"].to_string()
        );
    }
    out
}
