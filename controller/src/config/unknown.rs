//! Finds every unknown key in a config file, with its line and column.
//!
//! Serde stops at the first unknown key. When that happens, this second
//! pass reads the file as a plain tree whose keys carry locations and
//! reports every key the schema below does not know, so one run of
//! `check-config` lists them all.

use super::{Problem, Severity};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A YAML value reduced to what the scan needs.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<String>, Node)>),
    Seq(Vec<Node>),
    Scalar,
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(k) = m.next_key::<Spanned<String>>()? {
            v.push((k, m.next_value::<Node>()?));
        }
        Ok(Node::Map(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(e) = s.next_element::<Node>()? {
            v.push(e);
        }
        Ok(Node::Seq(v))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// The keys each mapping accepts, by path ("" is the top level, "[]" an
/// element of a list).
fn schema(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => &[
            "controller",
            "keys",
            "vlans",
            "switches",
            "groups",
            "leases",
            "fanout",
            "api",
            "rendezvous",
            "budgets",
        ],
        "controller" => &[
            "id",
            "udp_listen",
            "database",
            "pool_slice",
            "agent_timeout_ms",
            "audit_max_rows",
        ],
        "keys[]" => &["id", "file", "hex"],
        "vlans[]" => &["id", "name", "pool"],
        "switches[]" => &["name", "id", "vlans", "agent", "budget"],
        "switches[].agent" => &["address", "key_id", "agent_key_id"],
        "groups[]" => &[
            "name",
            "vlan",
            "parent",
            "members",
            "replicas",
            "preenumerate",
        ],
        "groups[].preenumerate" => &["top"],
        "groups[].members[]" => &["name", "ipv6", "ipv4", "mac"],
        "leases" => &[
            "default_ms",
            "max_ms",
            "warm_ms",
            "hold_ms",
            "max_per_credential",
        ],
        "budgets" => &["default", "miss_reserve_percent"],
        "fanout" => &["retransmit_ms", "attempts"],
        "api" => &["listen", "tokens", "max_body_bytes"],
        "api.tokens[]" => &["role", "name", "file", "token", "max_leases"],
        "rendezvous" => &["key_ids", "max_leases_per_sender"],
        _ => return None,
    })
}

fn walk(node: &Node, path: &str, out: &mut Vec<Problem>) {
    match node {
        Node::Map(entries) => {
            let Some(allowed) = schema(path) else { return };
            for (k, v) in entries {
                if allowed.contains(&k.value.as_str()) {
                    let child = if path.is_empty() {
                        k.value.clone()
                    } else {
                        format!("{path}.{}", k.value)
                    };
                    walk(v, &child, out);
                } else {
                    let section = if path.is_empty() {
                        "the top level".to_owned()
                    } else {
                        format!("`{path}`")
                    };
                    out.push(Problem {
                        severity: Severity::Error,
                        line: k.referenced.line(),
                        column: k.referenced.column(),
                        message: format!("unknown key `{}` in {section}", k.value),
                        hint: format!("keys allowed here: {}", allowed.join(", ")),
                    });
                }
            }
        }
        Node::Seq(items) => {
            for i in items {
                walk(i, &format!("{path}[]"), out);
            }
        }
        Node::Scalar => {}
    }
}

/// Every unknown key in `text`; empty if the text does not parse as a
/// tree (the caller then reports the parser's own error).
pub fn unknown_keys(text: &str) -> Vec<Problem> {
    let Ok(root) = serde_saphyr::from_str::<Node>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&root, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_unknown_key_with_its_place() {
        let y = "controller:\n  idd: 1\nvlans:\n  - id: 1\n    pol: []\nswitches:\n  - name: a\n    agent: { adress: x }\ncolour: red\n";
        let p = unknown_keys(y);
        let got: Vec<(u64, u64, &str)> = p
            .iter()
            .map(|p| (p.line, p.column, p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 3, "unknown key `idd` in `controller`"),
                (5, 5, "unknown key `pol` in `vlans[]`"),
                (8, 14, "unknown key `adress` in `switches[].agent`"),
                (9, 1, "unknown key `colour` in the top level"),
            ]
        );
        assert!(p[0].hint.contains("udp_listen"));
    }

    #[test]
    fn a_clean_file_has_none() {
        assert!(unknown_keys(super::super::DEFAULT_CONFIG).is_empty());
    }
}
