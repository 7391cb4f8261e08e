//! Who may read the status page: an admin token, as for the API. A
//! browser cannot easily send `Authorization: Bearer`, so the page also
//! takes the token as `?token=...` (then sets it as an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/status`, so links and reloads
//! need no token in the address) or from that cookie.

use super::layout;
use crate::api::auth::lookup;
use crate::config::{Role, Token};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The cookie that carries the token.
pub const COOKIE: &str = "subcast_token";

/// Where the token came from, and the `Set-Cookie` to send (when it came
/// in the query).
#[derive(Debug)]
pub struct Admitted {
    pub name: String,
    pub set_cookie: Option<HeaderValue>,
}

/// The value of cookie `name` in the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Characters a cookie value may hold unquoted (RFC 6265 cookie-octet).
fn cookie_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// The token presented: the bearer header, then `?token=`, then the
/// cookie. Returns it and whether it came from the query.
fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<(&'a str, bool)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer
        .map(|t| (t, false))
        .or(query.map(|t| (t, true)))
        .or(cookie(headers, COOKIE).map(|t| (t, false)))
}

/// Admits an admin token, or answers 401/403 with a short HTML page.
pub fn admit(
    tokens: &[Token],
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Admitted, Refused> {
    let Some((p, from_query)) = presented(headers, query) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "No token: open /status?token=ADMIN_TOKEN once (the page then keeps it in a cookie), \
             or send Authorization: Bearer ADMIN_TOKEN. Tokens are listed under api.tokens \
             in the controller config.",
        ));
    };
    let Some(tok) = lookup(tokens, p) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "The token is not one the controller knows; check api.tokens in the controller \
             config (an admin token is needed).",
        ));
    };
    if tok.role != Role::Admin {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "This token's role may only request and release rendezvous groups; the status \
             page needs an admin token.",
        ));
    }
    let set_cookie = (from_query && cookie_safe(p)).then(|| {
        HeaderValue::from_str(&format!(
            "{COOKIE}={p}; Path=/status; HttpOnly; SameSite=Strict"
        ))
        .expect("cookie-safe characters")
    });
    Ok(Admitted {
        name: tok.name.clone(),
        set_cookie,
    })
}

/// A refusal: 401 or 403 and why, answered as a short HTML page.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub text: &'static str,
}

fn refuse(status: StatusCode, text: &'static str) -> Refused {
    Refused { status, text }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let title = if self.status == StatusCode::FORBIDDEN {
            "403 Forbidden"
        } else {
            "401 Unauthorized"
        };
        (
            self.status,
            super::headers(),
            layout::message(title, self.text),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<Token> {
        vec![
            Token {
                name: "ops".into(),
                role: Role::Admin,
                secret: "admin-secret-0123456789".into(),
                max_leases: None,
            },
            Token {
                name: "nodes".into(),
                role: Role::StorageNode,
                secret: "node-secret-0123456789".into(),
                max_leases: None,
            },
        ]
    }

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn query_token_is_admitted_and_set_as_a_strict_http_only_cookie() {
        let a = admit(
            &tokens(),
            &HeaderMap::new(),
            Some("admin-secret-0123456789"),
        )
        .unwrap();
        assert_eq!(a.name, "ops");
        let c = a.set_cookie.unwrap();
        let c = c.to_str().unwrap();
        assert!(
            c.starts_with("subcast_token=admin-secret-0123456789;"),
            "{c}"
        );
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(c.contains("Path=/status"), "{c}");
    }

    #[test]
    fn cookie_and_bearer_are_admitted_without_setting_a_cookie() {
        let h = with(
            header::COOKIE,
            "a=b; subcast_token=admin-secret-0123456789; c=d",
        );
        let a = admit(&tokens(), &h, None).unwrap();
        assert!(a.set_cookie.is_none());
        let h = with(header::AUTHORIZATION, "Bearer admin-secret-0123456789");
        assert!(admit(&tokens(), &h, None).unwrap().set_cookie.is_none());
    }

    #[test]
    fn missing_wrong_and_storage_node_tokens_are_refused() {
        let none = admit(&tokens(), &HeaderMap::new(), None).unwrap_err();
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        let wrong =
            admit(&tokens(), &HeaderMap::new(), Some("admin-secret-012345678")).unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let h = with(header::COOKIE, "subcast_token=nope");
        assert_eq!(
            admit(&tokens(), &h, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let node = admit(&tokens(), &HeaderMap::new(), Some("node-secret-0123456789")).unwrap_err();
        assert_eq!(node.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn tokens_a_cookie_cannot_carry_are_not_set() {
        let mut t = tokens();
        t[0].secret = "has space;and semicolon".into();
        let a = admit(&t, &HeaderMap::new(), Some("has space;and semicolon")).unwrap();
        assert!(a.set_cookie.is_none());
    }
}
