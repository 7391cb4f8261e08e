//! The inspection commands (`agents`, `leases`, `groups`, `audit`,
//! `refusals`, `reload`): clients of a running controller's HTTP API that
//! print tables, or the API's JSON with `--json`.

pub mod show;
pub mod table;

use crate::api::views::{AgentView, LeaseView, RefusalView, SubsetView};
use crate::config::Role;
use crate::store::AuditEntry;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the controller's API is and which token to use. Without
/// `--api`/`--token`, both come from the controller's config file
/// (`api.listen` and its first admin token).
#[derive(Debug, Clone, clap::Args)]
pub struct Connect {
    /// The controller's API, e.g. http://[::1]:8411.
    #[arg(long, env = "SUBCAST_CONTROLLER_API")]
    pub api: Option<String>,
    /// An admin token.
    #[arg(long, env = "SUBCAST_CONTROLLER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding an admin token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The controller's config file, for whatever --api and --token do not say.
    #[arg(long, short, env = "SUBCAST_CONTROLLER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The URL a client uses to reach a server listening on `a`.
pub fn url_for(a: SocketAddr) -> String {
    let ip = match a.ip() {
        std::net::IpAddr::V6(v) if v.is_unspecified() => "::1".parse().expect("valid"),
        std::net::IpAddr::V4(v) if v.is_unspecified() => "127.0.0.1".parse().expect("valid"),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, a.port()))
}

/// An HTTP client of one controller.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Client> {
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("building the HTTP client")?,
        })
    }

    pub fn from_args(c: &Connect) -> anyhow::Result<Client> {
        let mut api = c.api.clone();
        let mut token = c.token.clone();
        if token.is_none()
            && let Some(f) = &c.token_file
        {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?;
            token = Some(t.trim().to_owned());
        }
        if (api.is_none() || token.is_none())
            && let Some(path) = &c.config
        {
            let name = path.display().to_string();
            let (cfg, _) = crate::config::load_file(path).map_err(|problems| {
                let text: Vec<String> = problems.iter().map(|p| p.render(&name)).collect();
                anyhow::anyhow!("{}\n{name} has errors", text.join("\n"))
            })?;
            api.get_or_insert_with(|| url_for(cfg.api_listen));
            if token.is_none() {
                token = cfg
                    .tokens
                    .iter()
                    .find(|t| t.role == Role::Admin)
                    .map(|t| t.secret.clone());
                if token.is_none() {
                    bail!("{name} has no admin token under api.tokens; pass --token-file");
                }
            }
        }
        let Some(api) = api else {
            bail!(
                "where is the controller? pass --api http://[::1]:8411 (or --config with the controller's config file)"
            );
        };
        let Some(token) = token else {
            bail!(
                "no token: pass --token-file FILE with an admin token (or --config with the controller's config file)"
            );
        };
        Client::new(&api, &token)
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
        let resp =
            req.bearer_auth(&self.token).send().await.with_context(|| {
                format!("cannot reach the controller at {} ({what})", self.base)
            })?;
        let status = resp.status();
        let body = resp.text().await.context("reading the answer")?;
        if !status.is_success() {
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            bail!("{what}: HTTP {status}: {msg}");
        }
        Ok(body)
    }

    /// GET `path` with `query`; the body's text.
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query)
            .with_context(|| format!("{} is not a URL", self.base))?;
        self.send(self.http.get(url), &format!("GET {path}")).await
    }

    /// POST `path` without a body; the answer's text and status.
    pub async fn post_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller at {}", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.context("reading the answer")?))
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let text = self.get_text(path, query).await?;
        serde_json::from_str(&text)
            .with_context(|| format!("the answer to GET {path} is not what this client expects"))
    }
}

/// One inspection command.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Inspect {
    /// Switches and their agents: state, backend, address, last heard,
    /// table occupancy against budget.
    Agents {
        #[command(flatten)]
        to: Connect,
    },
    /// Leases: group, parent, targets, ports per switch as ACKed, age, expiry.
    Leases {
        #[command(flatten)]
        to: Connect,
    },
    /// Rendezvous groups: per switch the ports ACKed, and whether every
    /// switch agrees.
    Groups {
        /// Only the groups this switch (name or id) holds, with the
        /// transaction that owns each there.
        #[arg(long)]
        switch: Option<String>,
        #[command(flatten)]
        to: Connect,
    },
    /// The audit log: every instruction to an agent and its outcome.
    Audit {
        /// How far back: 30s, 15m, 2h, 1d, or a Unix time in ms.
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long)]
        switch: Option<String>,
        /// A rendezvous group's address.
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        lease: Option<u64>,
        /// At most this many rows (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        to: Connect,
    },
    /// The most recent refused requests and why.
    Refusals {
        #[command(flatten)]
        to: Connect,
    },
    /// Make the running controller read its config file again (as
    /// SIGHUP does): applied whole, or refused naming what cannot change.
    Reload {
        #[command(flatten)]
        to: Connect,
    },
}

impl Inspect {
    pub fn connect(&self) -> &Connect {
        match self {
            Inspect::Agents { to }
            | Inspect::Leases { to }
            | Inspect::Groups { to, .. }
            | Inspect::Audit { to, .. }
            | Inspect::Refusals { to }
            | Inspect::Reload { to } => to,
        }
    }
}

fn now_ms() -> u64 {
    subcast_proto::now_us() / 1000
}

/// Runs `cmd` against the controller it names; the text to print.
pub async fn run(cmd: &Inspect) -> anyhow::Result<String> {
    let to = cmd.connect();
    let c = &Client::from_args(to)?;
    let json = to.json;
    let now = now_ms();
    let text = match cmd {
        Inspect::Agents { .. } => {
            let body = c.get_text("/v1/agents", &[]).await?;
            if json {
                return Ok(body + "\n");
            }
            show::agents(&parse::<Vec<AgentView>>(&body)?)
        }
        Inspect::Leases { .. } => {
            let body = c.get_text("/v1/leases", &[]).await?;
            if json {
                return Ok(body + "\n");
            }
            show::leases(&parse::<Vec<LeaseView>>(&body)?, now)
        }
        Inspect::Groups { switch, .. } => {
            let q: Vec<(&str, String)> = switch.iter().map(|s| ("switch", s.clone())).collect();
            let body = c.get_text("/v1/subsets", &q).await?;
            if json {
                return Ok(body + "\n");
            }
            let v = parse::<Vec<SubsetView>>(&body)?;
            match switch {
                Some(s) => show::groups_on(&v, s, now),
                None => show::groups(&v),
            }
        }
        Inspect::Audit {
            since,
            switch,
            group,
            lease,
            limit,
            ..
        } => {
            let since_ms = table::parse_since(since, now).map_err(anyhow::Error::msg)?;
            let mut q = vec![
                ("since_ms", since_ms.to_string()),
                ("limit", limit.to_string()),
            ];
            q.extend(switch.iter().map(|s| ("switch", s.clone())));
            q.extend(group.iter().map(|g| ("group", g.clone())));
            q.extend(lease.iter().map(|l| ("lease", l.to_string())));
            let body = c.get_text("/v1/audit", &q).await?;
            if json {
                return Ok(body + "\n");
            }
            let rows = parse::<Vec<AuditEntry>>(&body)?;
            let agents: Vec<AgentView> = c.get("/v1/agents", &[]).await.unwrap_or_default();
            show::audit(&rows, |id| {
                agents
                    .iter()
                    .find(|a| a.switch_id == id)
                    .map_or_else(|| id.to_string(), |a| a.name.clone())
            })
        }
        Inspect::Reload { .. } => {
            let (status, body) = c.post_text("/v1/reload").await?;
            let v: crate::api::views::ReloadView = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(_) => bail!("POST /v1/reload: HTTP {status}: {body}"),
            };
            if json {
                if !v.applied {
                    bail!("{body}");
                }
                return Ok(body + "\n");
            }
            if !v.applied {
                bail!("{}", v.message);
            }
            show::reloaded(&v)
        }
        Inspect::Refusals { .. } => {
            let body = c.get_text("/v1/refusals", &[]).await?;
            if json {
                return Ok(body + "\n");
            }
            show::refusals(&parse::<Vec<RefusalView>>(&body)?)
        }
    };
    Ok(text)
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> anyhow::Result<T> {
    serde_json::from_str(body)
        .context("the controller's answer is not what this client expects (a different version?)")
}
