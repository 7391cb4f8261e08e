//! Checks of the settings for transaction rates: warm and hold times,
//! quotas, budgets and pre-enumeration.

use super::Preenumerate;
use super::model::{RawConfig, RawGroup, RawPreenumerate};
use super::validate::Checker;
use serde_saphyr::Location;
use std::time::Duration;

/// Most target sets `preenumerate: all` may ask for in one group.
pub const MAX_ENUMERATED: u64 = 65_536;

/// Agents cap lifetimes at their `max_lifetime_ms` (600000 by default).
const AGENT_MAX_LIFETIME_MS: u64 = 600_000;

pub(super) struct Rates {
    pub warm: Duration,
    pub hold: Duration,
    pub max_per_credential: u32,
    pub default_budget: u32,
    pub miss_reserve_percent: u32,
}

/// C(n, k), saturating.
pub fn choose(n: u64, k: u64) -> u64 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut r: u64 = 1;
    for i in 0..k {
        r = r.saturating_mul(n - i) / (i + 1);
    }
    r
}

pub(super) fn rates(c: &mut Checker<'_>, raw: &RawConfig, lease_max: u64) -> Rates {
    let l = &raw.leases;
    let warm = l.warm_ms.as_ref().map_or(10_000, |v| v.value);
    let hold = l.hold_ms.as_ref().map_or(10_000, |v| v.value);
    if let Some(v) = &l.hold_ms
        && v.value < 1000
    {
        c.error(
            v.referenced,
            format!("hold_ms {} is below 1000", v.value),
            "the hold must outlast a refresh's retransmissions; 10000 is typical",
        );
    }
    if lease_max + warm + hold > AGENT_MAX_LIFETIME_MS {
        let at = l
            .warm_ms
            .as_ref()
            .or(l.max_ms.as_ref())
            .map_or(Location::UNKNOWN, |v| v.referenced);
        c.warn(
            at,
            format!(
                "max_ms + warm_ms + hold_ms = {} ms is above the agents' default max_lifetime_ms ({AGENT_MAX_LIFETIME_MS})",
                lease_max + warm + hold
            ),
            "raise max_lifetime_ms on every agent, or lower these (agents cut longer lifetimes short)",
        );
    }
    let b = &raw.budgets;
    let default_budget = b.default.as_ref().map_or(512, |v| v.value);
    if let Some(v) = &b.default
        && v.value == 0
    {
        c.error(
            v.referenced,
            "budgets.default is 0".into(),
            "a switch needs room for at least one group; 512 is the smallest real table",
        );
    }
    let miss_reserve_percent = b.miss_reserve_percent.as_ref().map_or(25, |v| v.value);
    if let Some(v) = &b.miss_reserve_percent
        && v.value > 100
    {
        c.error(
            v.referenced,
            format!("miss_reserve_percent {} is above 100", v.value),
            "use 0 to 100 (25 is typical)",
        );
    }
    for s in &raw.switches {
        if let Some(v) = &s.budget
            && v.value == 0
        {
            c.error(
                v.referenced,
                format!("switch {} has budget 0", s.name.value),
                "give it at least 1, or remove the switch from the VLAN",
            );
        }
    }
    Rates {
        warm: Duration::from_millis(warm),
        hold: Duration::from_millis(hold),
        max_per_credential: l.max_per_credential.as_ref().map_or(4096, |v| v.value),
        default_budget,
        miss_reserve_percent: miss_reserve_percent.min(100),
    }
}

/// `replicas` and `preenumerate` of one group.
pub(super) fn preenumerate(
    c: &mut Checker<'_>,
    g: &RawGroup,
    members: usize,
) -> (u32, Preenumerate) {
    let replicas = g.replicas.as_ref().map_or(3, |v| v.value);
    if let Some(v) = &g.replicas
        && (v.value == 0 || v.value as usize > members.max(1))
    {
        c.error(
            v.referenced,
            format!(
                "group {} has replicas {} but {members} members",
                g.name.value, v.value
            ),
            "replicas is the number of targets per transfer: 1 to the member count",
        );
    }
    let Some(p) = &g.preenumerate else {
        return (replicas, Preenumerate::None);
    };
    let mode = match &p.value {
        RawPreenumerate::Word(w) if w == "none" => Preenumerate::None,
        RawPreenumerate::Word(w) if w == "all" => {
            let n = choose(members as u64, u64::from(replicas));
            if n > MAX_ENUMERATED {
                c.error(
                    p.referenced,
                    format!(
                        "group {}: all C({members},{replicas}) = {n} target sets is too many",
                        g.name.value
                    ),
                    "use `preenumerate: { top: N }` for large groups",
                );
            }
            Preenumerate::All
        }
        RawPreenumerate::Top { top } => Preenumerate::Top(*top),
        RawPreenumerate::Word(w) => {
            c.error(
                p.referenced,
                format!("preenumerate {w:?} is not none, all or {{ top: N }}"),
                "write `preenumerate: all`, `preenumerate: none` or `preenumerate: { top: 20 }`",
            );
            Preenumerate::None
        }
    };
    (replicas, mode)
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn binomials() {
        assert_eq!(choose(12, 3), 220);
        assert_eq!(choose(6, 3), 20);
        assert_eq!(choose(3, 5), 0);
        assert_eq!(choose(20, 0), 1);
    }
}
