//! Multi-site topologies: `sites:` (name -> a site's switches, links, hosts
//! and negotiating groups, as in a one-site topology, plus its `gateway`
//! host) and `site_links:` between sites (any graph, loops allowed; each
//! site's own switch links stay a tree).
//!
//! ```yaml
//! rate_mbit: 50            # default rate of the site links (optional)
//! sites:
//!   A:
//!     switches: {SA: {}}
//!     hosts: {A1: {switch: SA}, A2: {switch: SA}, A3: {switch: SA}, AG: {switch: SA}}
//!     negotiating_groups: {NG0: {members: [A1, A2, A3]}}
//!     gateway: AG          # default: the first host in no negotiating group
//!   B: ...
//! site_links:
//!   - [A, B]
//!   - {between: [B, C], rate_mbit: 20}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{GroupSpec, HostSpec, LinkSpec, SwitchSpec, Topology, TopologyError};

/// One site: a one-site topology and its gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// As a topology's `loss_pct` (inside the site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// As a topology's `rate_mbit` (inside the site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
    /// As a topology's `mtu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The site's switches.
    pub switches: BTreeMap<String, SwitchSpec>,
    /// Its trunks (a tree).
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Its hosts.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostSpec>,
    /// Its negotiating groups.
    #[serde(default)]
    pub negotiating_groups: BTreeMap<String, GroupSpec>,
    /// The host running the site's gateway (default: the first host, in
    /// name order, that is in no negotiating group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A link between two sites: `[A, B]` or `{between: [A, B], rate_mbit: R}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SiteLinkSpec {
    /// Just the two ends.
    Pair(Vec<String>),
    /// The two ends and options.
    Full {
        /// The two sites.
        between: Vec<String>,
        /// Rate in Mbit/s, each direction (default: the file's `rate_mbit`).
        #[serde(default)]
        rate_mbit: Option<f64>,
    },
}

/// A validated site link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteLink {
    /// One end (the first written).
    pub a: String,
    /// The other end.
    pub b: String,
    /// Rate in Mbit/s (`None`: unshaped).
    pub rate_mbit: Option<f64>,
}

impl SiteLink {
    /// `A-B` as written.
    pub fn name(&self) -> String {
        format!("{}-{}", self.a, self.b)
    }
}

/// A multi-site topology file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SitesTopology {
    /// Default rate of the site links, Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
    /// Sites by name.
    pub sites: BTreeMap<String, SiteSpec>,
    /// Links between sites.
    #[serde(default)]
    pub site_links: Vec<SiteLinkSpec>,
}

/// Longest site name (it appears in file and interface names).
pub const MAX_SITE_NAME: usize = 8;

impl SitesTopology {
    /// Whether YAML text declares `sites:` (a multi-site file).
    pub fn is_sites_yaml(text: &str) -> bool {
        text.lines().any(|l| l.starts_with("sites:"))
    }

    /// Parse and validate.
    pub fn from_yaml_str(text: &str) -> Result<Self, TopologyError> {
        let t: SitesTopology =
            serde_saphyr::from_str(text).map_err(|e| TopologyError::Yaml(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Read, parse and validate a file.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text).map_err(|e| match e {
            TopologyError::Yaml(m) => TopologyError::Yaml(format!("{}: {m}", path.display())),
            TopologyError::Invalid(m) => TopologyError::Invalid(format!("{}: {m}", path.display())),
            o => o,
        })
    }

    fn validate(&self) -> Result<(), TopologyError> {
        let bad = |m: String| Err(TopologyError::Invalid(m));
        if self.sites.len() < 2 {
            return bad("`sites:` needs at least two sites".into());
        }
        for name in self.sites.keys() {
            if name.is_empty()
                || name.len() > MAX_SITE_NAME
                || !name.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return bad(format!(
                    "site name {name:?}: use 1 to {MAX_SITE_NAME} letters or digits"
                ));
            }
            self.site(name)?;
            self.gateway(name)?;
        }
        self.links()?;
        Ok(())
    }

    /// The site links, validated.
    pub fn links(&self) -> Result<Vec<SiteLink>, TopologyError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for l in &self.site_links {
            let (ends, rate) = match l {
                SiteLinkSpec::Pair(e) => (e, None),
                SiteLinkSpec::Full { between, rate_mbit } => (between, *rate_mbit),
            };
            let [a, b] = ends.as_slice() else {
                return Err(TopologyError::Invalid(format!(
                    "site link {ends:?}: name exactly two sites"
                )));
            };
            for s in [a, b] {
                if !self.sites.contains_key(s) {
                    return Err(TopologyError::Invalid(format!(
                        "site link {a}-{b}: no site {s:?} in `sites:`"
                    )));
                }
            }
            if a == b {
                return Err(TopologyError::Invalid(format!(
                    "site link {a}-{b}: a site cannot link to itself"
                )));
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if !seen.insert(key) {
                return Err(TopologyError::Invalid(format!(
                    "site link {a}-{b} is listed twice"
                )));
            }
            let rate_mbit = rate.or(self.rate_mbit);
            if let Some(r) = rate_mbit
                && !(r > 0.0 && r <= super::MAX_RATE_MBIT)
            {
                return Err(TopologyError::Invalid(format!(
                    "site link {a}-{b}: rate_mbit {r} must be above 0 and at most {}",
                    super::MAX_RATE_MBIT
                )));
            }
            out.push(SiteLink {
                a: a.clone(),
                b: b.clone(),
                rate_mbit,
            });
        }
        Ok(out)
    }

    /// Site `name` as a one-site topology (validated).
    pub fn site(&self, name: &str) -> Result<Topology, TopologyError> {
        let s = self
            .sites
            .get(name)
            .ok_or_else(|| TopologyError::Invalid(format!("no site {name:?}")))?;
        // Fields this file does not set (other topology options) keep
        // their defaults.
        #[allow(clippy::needless_update)]
        let t = Topology {
            loss_pct: s.loss_pct,
            rate_mbit: s.rate_mbit,
            mtu: s.mtu,
            switches: s.switches.clone(),
            links: s.links.clone(),
            hosts: s.hosts.clone(),
            negotiating_groups: s.negotiating_groups.clone(),
            ..Topology::default()
        };
        t.check()
            .map_err(|(_, m)| TopologyError::Invalid(format!("site {name}: {m}")))?;
        Ok(t)
    }

    /// The gateway host of site `name`.
    pub fn gateway(&self, name: &str) -> Result<String, TopologyError> {
        let t = self.site(name)?;
        let s = &self.sites[name];
        if let Some(g) = &s.gateway {
            if !t.hosts.contains_key(g) {
                return Err(TopologyError::Invalid(format!(
                    "site {name}: gateway {g:?} is not one of its hosts"
                )));
            }
            if t.negotiating_groups.values().any(|x| x.members.contains(g)) {
                return Err(TopologyError::Invalid(format!(
                    "site {name}: gateway {g:?} must not be a negotiating-group member (it runs no storage node)"
                )));
            }
            return Ok(g.clone());
        }
        t.hosts_in_order()
            .into_iter()
            .find(|h| !t.negotiating_groups.values().any(|x| x.members.iter().any(|m| m == h)))
            .map(str::to_owned)
            .ok_or_else(|| {
                TopologyError::Invalid(format!(
                    "site {name}: no host outside the negotiating groups for the gateway: add one (or name it in `gateway:`)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIANGLE: &str = "
rate_mbit: 50
sites:
  A:
    switches: {SA: {}}
    hosts: {A1: {switch: SA}, A2: {switch: SA}, A3: {switch: SA}, AG: {switch: SA}}
    negotiating_groups: {NG0: {members: [A1, A2, A3]}}
  B:
    switches: {SB: {}}
    hosts: {B1: {switch: SB}, B2: {switch: SB}, B3: {switch: SB}, BG: {switch: SB}}
    negotiating_groups: {NG0: {members: [B1, B2, B3]}}
    gateway: BG
  C:
    switches: {SC: {}}
    hosts: {C1: {switch: SC}, C2: {switch: SC}, C3: {switch: SC}, CG: {switch: SC}}
    negotiating_groups: {NG0: {members: [C1, C2, C3]}}
site_links:
  - [A, B]
  - [B, C]
  - {between: [C, A], rate_mbit: 20}
";

    #[test]
    fn a_triangle_parses_with_loops_between_sites() {
        assert!(SitesTopology::is_sites_yaml(TRIANGLE));
        let t = SitesTopology::from_yaml_str(TRIANGLE).unwrap();
        let l = t.links().unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].rate_mbit, Some(50.0));
        assert_eq!(l[2].rate_mbit, Some(20.0));
        assert_eq!(l[2].name(), "C-A");
        assert_eq!(t.gateway("A").unwrap(), "AG");
        assert_eq!(t.site("B").unwrap().hosts.len(), 4);
    }

    #[test]
    fn the_shipped_file_is_valid() {
        let t = SitesTopology::from_yaml_file(crate::topology_path("three-sites.yaml")).unwrap();
        assert_eq!(t.sites.len(), 3);
        assert_eq!(t.links().unwrap().len(), 3);
        for s in ["A", "B", "C"] {
            assert_eq!(
                t.site(s).unwrap().negotiating_groups["NG0"].members.len(),
                3
            );
        }
        // A one-site reader refuses it (it is several labs).
        assert!(crate::Topology::from_yaml_file(crate::topology_path("three-sites.yaml")).is_err());
    }

    #[test]
    fn mistakes_are_named() {
        let e = |s: &str| SitesTopology::from_yaml_str(s).unwrap_err().to_string();
        assert!(e(&TRIANGLE.replace("[B, C]", "[B, D]")).contains("no site \"D\""));
        assert!(e(&TRIANGLE.replace("[B, C]", "[B, B]")).contains("itself"));
        assert!(e(&TRIANGLE.replace("[B, C]", "[B, A]")).contains("twice"));
        assert!(e(&TRIANGLE.replace("gateway: BG", "gateway: B1")).contains("member"));
        assert!(e(&TRIANGLE.replace("{C1: {switch: SC}", "{C1: {switch: SX}")).contains("site C"));
    }
}
