//! Bearer tokens by role: `admin` may do everything; `storage-node` may
//! only request and release rendezvous groups. `/healthz`, `/metrics` and
//! `/openapi.json` need no token.

use super::errors::ApiError;
use crate::Controller;
use crate::config::{Role, Token};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The caller, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Most leases this token may hold (None: no limit).
    pub max_leases: Option<u32>,
}

impl Caller {
    /// The engine's view of this caller.
    pub fn engine(&self) -> crate::engine::Caller {
        crate::engine::Caller {
            name: self.name.clone(),
            admin: self.role == Role::Admin,
            max_leases: self.max_leases,
        }
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Constant time for equal lengths; lengths are not secret.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn lookup<'t>(tokens: &'t [Token], presented: &str) -> Option<&'t Token> {
    tokens
        .iter()
        .find(|t| same(t.secret.as_bytes(), presented.as_bytes()))
}

fn allowed(role: Role, method: &Method, path: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::StorageNode => {
            (method == Method::POST && path == "/v1/rendezvous")
                || (method == Method::DELETE && path.starts_with("/v1/rendezvous/"))
        }
    }
}

pub async fn require_token(
    State(ctl): State<Arc<Controller>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer TOKEN` header; tokens are listed under api.tokens in the controller config",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cfg = ctl.config();
    let Some(tok) = presented.and_then(|p| lookup(&cfg.tokens, p)) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not one the controller knows; check api.tokens",
        ));
    };
    if !allowed(tok.role, req.method(), req.uri().path()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {:?} has role {}, which may only request and release rendezvous groups",
                tok.name,
                tok.role.name()
            ),
        ));
    }
    let max = tok.max_leases.unwrap_or(cfg.max_leases_per_credential);
    req.extensions_mut().insert(Caller {
        name: tok.name.clone(),
        role: tok.role,
        max_leases: (max > 0).then_some(max),
    });
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_nodes_only_rendezvous() {
        assert!(allowed(Role::StorageNode, &Method::POST, "/v1/rendezvous"));
        assert!(allowed(
            Role::StorageNode,
            &Method::DELETE,
            "/v1/rendezvous/12"
        ));
        assert!(!allowed(Role::StorageNode, &Method::GET, "/v1/leases"));
        assert!(!allowed(Role::StorageNode, &Method::GET, "/v1/agents"));
        assert!(allowed(Role::Admin, &Method::GET, "/v1/agents"));
    }

    #[test]
    fn token_lookup() {
        let t = vec![Token {
            name: "a".into(),
            role: Role::Admin,
            secret: "0123456789abcdef".into(),
            max_leases: None,
        }];
        assert!(lookup(&t, "0123456789abcdef").is_some());
        assert!(lookup(&t, "0123456789abcdeF").is_none());
        assert!(lookup(&t, "0123").is_none());
    }
}
