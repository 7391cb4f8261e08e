//! Line and column of the parts of a topology file, for error messages.
//!
//! The topology itself keeps plain values (so it compares and serializes simply);
//! when validation finds a problem, the file is read a second time into this
//! shadow, which records where each switch, link, host, group and shaping value
//! was written.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// What a validation error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Where {
    /// Nothing in particular (the whole file).
    Nowhere,
    /// A top-level key (`family`, `loss_pct`, `rate_mbit`, `switches`, `links`).
    Top(&'static str),
    /// A switch entry.
    Switch(String),
    /// The n-th link (0-based).
    Link(usize),
    /// A field of the n-th link.
    LinkField(usize, &'static str),
    /// A host entry.
    Host(String),
    /// A field of a host entry.
    HostField(String, &'static str),
    /// A negotiating group entry.
    Group(String),
}

/// A position in the file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

type Sp = Spanned<IgnoredAny>;

fn pos<T>(s: &Spanned<T>) -> Option<Pos> {
    let l = s.referenced;
    (l.line() > 0).then(|| Pos {
        line: l.line(),
        column: l.column(),
    })
}

#[derive(Deserialize)]
struct Fields {
    loss_pct: Option<Sp>,
    rate_mbit: Option<Sp>,
}

/// A link as written: a sequence, or a map with shaping fields.
#[derive(Default)]
struct LinkFields {
    loss_pct: Option<Sp>,
    rate_mbit: Option<Sp>,
}

impl<'de> Deserialize<'de> for LinkFields {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LinkFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a link")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<LinkFields, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LinkFields::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<LinkFields, A::Error> {
                let mut out = LinkFields::default();
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "loss_pct" => out.loss_pct = Some(m.next_value()?),
                        "rate_mbit" => out.rate_mbit = Some(m.next_value()?),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Shadow {
    family: Option<Sp>,
    loss_pct: Option<Sp>,
    rate_mbit: Option<Sp>,
    mtu: Option<Sp>,
    nic_offload: Option<Sp>,
    switches: Option<Spanned<BTreeMap<String, Sp>>>,
    links: Option<Spanned<Vec<Spanned<LinkFields>>>>,
    hosts: Option<BTreeMap<String, Spanned<Fields>>>,
    negotiating_groups: Option<BTreeMap<String, Sp>>,
}

/// Where `w` is written in `text`, if it can be found.
pub(crate) fn locate(text: &str, w: &Where) -> Option<Pos> {
    let s: Shadow = serde_saphyr::from_str(text).ok()?;
    match w {
        Where::Nowhere => None,
        Where::Top("family") => s.family.as_ref().and_then(pos),
        Where::Top("loss_pct") => s.loss_pct.as_ref().and_then(pos),
        Where::Top("rate_mbit") => s.rate_mbit.as_ref().and_then(pos),
        Where::Top("mtu") => s.mtu.as_ref().and_then(pos),
        Where::Top("nic_offload") => s.nic_offload.as_ref().and_then(pos),
        Where::Top("switches") => s.switches.as_ref().and_then(pos),
        Where::Top("links") => s.links.as_ref().and_then(pos),
        Where::Top(_) => None,
        Where::Switch(n) => s.switches?.value.get(n).and_then(pos),
        Where::Link(i) => s.links?.value.get(*i).and_then(pos),
        Where::LinkField(i, f) => {
            let links = s.links?.value;
            let l = links.get(*i)?;
            let field = match *f {
                "loss_pct" => l.value.loss_pct.as_ref(),
                "rate_mbit" => l.value.rate_mbit.as_ref(),
                _ => None,
            };
            field.and_then(pos).or_else(|| pos(l))
        }
        Where::Host(h) => s.hosts?.get(h).and_then(pos),
        Where::HostField(h, f) => {
            let hosts = s.hosts?;
            let e = hosts.get(h)?;
            let field = match *f {
                "loss_pct" => e.value.loss_pct.as_ref(),
                "rate_mbit" => e.value.rate_mbit.as_ref(),
                _ => None,
            };
            field.and_then(pos).or_else(|| pos(e))
        }
        Where::Group(g) => s.negotiating_groups?.get(g).and_then(pos),
    }
}
