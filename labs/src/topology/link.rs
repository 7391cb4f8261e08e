//! A trunk between two switches: `[A, B]`, or with per-link shaping
//! `{between: [A, B], loss_pct: 2, rate_mbit: 100}`.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One trunk between two switches, with optional loss and rate overrides for this
/// link (both directions).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkSpec {
    /// The two switches.
    pub between: [String; 2],
    /// Percentage of UDP datagrams dropped in each direction (overrides the
    /// topology's `loss_pct`).
    pub loss_pct: Option<f64>,
    /// Rate limit in Mbit/s for each direction (overrides the topology's `rate_mbit`).
    pub rate_mbit: Option<f64>,
}

impl LinkSpec {
    /// A plain link between `a` and `b`.
    pub fn new(a: &str, b: &str) -> Self {
        LinkSpec {
            between: [a.to_string(), b.to_string()],
            loss_pct: None,
            rate_mbit: None,
        }
    }

    /// The two ends.
    pub fn ends(&self) -> (&str, &str) {
        (&self.between[0], &self.between[1])
    }
}

impl Serialize for LinkSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.loss_pct.is_none() && self.rate_mbit.is_none() {
            return self.between.serialize(s);
        }
        let n = 1 + usize::from(self.loss_pct.is_some()) + usize::from(self.rate_mbit.is_some());
        let mut m = s.serialize_map(Some(n))?;
        m.serialize_entry("between", &self.between)?;
        if let Some(l) = self.loss_pct {
            m.serialize_entry("loss_pct", &l)?;
        }
        if let Some(r) = self.rate_mbit {
            m.serialize_entry("rate_mbit", &r)?;
        }
        m.end()
    }
}

struct LinkVisitor;

impl<'de> Visitor<'de> for LinkVisitor {
    type Value = LinkSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a link `[A, B]` or `{between: [A, B], loss_pct: P, rate_mbit: N}`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LinkSpec, A::Error> {
        let a: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &"two switch names"))?;
        let b: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &"two switch names"))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &"two switch names"));
        }
        Ok(LinkSpec::new(&a, &b))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LinkSpec, A::Error> {
        let mut between: Option<[String; 2]> = None;
        let mut link = LinkSpec::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "between" => between = Some(map.next_value()?),
                "loss_pct" => link.loss_pct = Some(map.next_value()?),
                "rate_mbit" => link.rate_mbit = Some(map.next_value()?),
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["between", "loss_pct", "rate_mbit"],
                    ));
                }
            }
        }
        link.between = between.ok_or_else(|| de::Error::missing_field("between"))?;
        Ok(link)
    }
}

impl<'de> Deserialize<'de> for LinkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LinkVisitor)
    }
}
