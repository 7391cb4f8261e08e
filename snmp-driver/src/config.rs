//! Where the switch is and how to log in: [`SnmpConfig`], read from a YAML file.
//!
//! ```yaml
//! # /etc/subcast/switch-snmp.yaml  (keep it mode 0600: it holds secrets)
//! address: "192.0.2.10:161"   # host:port of the switch's SNMP agent
//! vlan: 1                     # dot1q VLAN of the rows (1 on untagged switches); default 1
//! timeout_ms: 1000            # per attempt; default 1000
//! retries: 2                  # extra attempts after a timeout; default 2
//! # exactly one of v2c / v3:
//! v2c:
//!   community: "private"      # needs write access (rwcommunity)
//! # v3:
//! #   user: "subcast"
//! #   auth_protocol: sha      # sha (HMAC-SHA-1, default) | sha224 | sha256 | sha384 | sha512 | md5
//! #   auth_password: "..."
//! #   priv_protocol: aes      # aes (AES-128-CFB, default) | aes192 | aes256 | des
//! #   priv_password: "..."
//! ```
//! v3 always uses authPriv. Secrets are held in [`Secret`], whose `Debug` prints
//! `<redacted>`; no code in this crate logs them.

use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// A password or community string. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret bytes, for the SNMP library only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SNMPv3 authentication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (legacy).
    Md5,
    /// HMAC-SHA-96 (`SHA` in snmpd.conf).
    #[default]
    Sha,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivProtocol {
    /// AES-128-CFB (`AES` in snmpd.conf).
    #[default]
    Aes,
    /// AES-192 (Blumenthal key extension).
    Aes192,
    /// AES-256 (Blumenthal key extension).
    Aes256,
    /// DES-CBC (legacy).
    Des,
}

/// Credentials for one switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SNMPv2c with a community string.
    V2c {
        /// The read-write community.
        community: Secret,
    },
    /// SNMPv3 USM, authPriv.
    V3 {
        /// USM user name (not secret).
        user: String,
        /// Authentication protocol.
        auth_protocol: AuthProtocol,
        /// Authentication password.
        auth_password: Secret,
        /// Privacy protocol.
        priv_protocol: PrivProtocol,
        /// Privacy password.
        priv_password: Secret,
    },
}

/// Everything needed to reach one switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpConfig {
    /// `host:port` of the agent.
    pub address: String,
    /// VLAN (dot1qVlanIndex / fdbId) of the rows this driver reads and writes.
    pub vlan: u16,
    /// Time to wait for one answer.
    pub timeout: Duration,
    /// Extra attempts after a timeout (SETs here are idempotent, so repeating is safe).
    pub retries: u32,
    /// How to authenticate.
    pub credentials: Credentials,
}

impl SnmpConfig {
    /// A v2c config with default VLAN 1, 1 s timeout, 2 retries.
    pub fn v2c(address: impl Into<String>, community: impl Into<String>) -> Self {
        SnmpConfig {
            address: address.into(),
            vlan: 1,
            timeout: Duration::from_millis(1000),
            retries: 2,
            credentials: Credentials::V2c {
                community: Secret::new(community),
            },
        }
    }

    /// A v3 authPriv SHA/AES config with default VLAN 1, 1 s timeout, 2 retries.
    pub fn v3_sha_aes(
        address: impl Into<String>,
        user: impl Into<String>,
        auth_password: impl Into<String>,
        priv_password: impl Into<String>,
    ) -> Self {
        SnmpConfig {
            address: address.into(),
            vlan: 1,
            timeout: Duration::from_millis(1000),
            retries: 2,
            credentials: Credentials::V3 {
                user: user.into(),
                auth_protocol: AuthProtocol::Sha,
                auth_password: Secret::new(auth_password),
                priv_protocol: PrivProtocol::Aes,
                priv_password: Secret::new(priv_password),
            },
        }
    }

    /// Reads a YAML credentials file (format in the module docs).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            detail: format!("cannot read it: {e}"),
        })?;
        Self::from_yaml(&text).map_err(|mut e| {
            e.path = path.display().to_string();
            e
        })
    }

    /// Parses the YAML text of a credentials file.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let err = |detail: String| ConfigError {
            path: "<text>".into(),
            detail,
        };
        // Keep only the first line ("line L column C: what"): the parser's later lines quote
        // the source text, which may hold a secret.
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let full = e.to_string();
            err(full.lines().next().unwrap_or("invalid YAML").to_string())
        })?;
        let credentials = match (raw.v2c, raw.v3) {
            (Some(v2c), None) => Credentials::V2c {
                community: v2c.community,
            },
            (None, Some(v3)) => Credentials::V3 {
                user: v3.user,
                auth_protocol: v3.auth_protocol,
                auth_password: v3.auth_password,
                priv_protocol: v3.priv_protocol,
                priv_password: v3.priv_password,
            },
            (Some(_), Some(_)) => return Err(err("give either `v2c:` or `v3:`, not both".into())),
            (None, None) => return Err(err("missing `v2c:` or `v3:` credentials".into())),
        };
        if raw.address.is_empty() {
            return Err(err("`address` is empty (expected host:port)".into()));
        }
        if !(1..=4094).contains(&raw.vlan) {
            return Err(err(format!("`vlan: {}` is not in 1..=4094", raw.vlan)));
        }
        if raw.timeout_ms == 0 {
            return Err(err("`timeout_ms` must be above 0".into()));
        }
        Ok(SnmpConfig {
            address: raw.address,
            vlan: raw.vlan,
            timeout: Duration::from_millis(raw.timeout_ms),
            retries: raw.retries,
            credentials,
        })
    }
}

/// A credentials file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SNMP credentials file {path}: {detail}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong (never contains a secret value).
    pub detail: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    address: String,
    #[serde(default = "default_vlan")]
    vlan: u16,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default)]
    v2c: Option<RawV2c>,
    #[serde(default)]
    v3: Option<RawV3>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV2c {
    community: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV3 {
    user: String,
    #[serde(default)]
    auth_protocol: AuthProtocol,
    auth_password: Secret,
    #[serde(default)]
    priv_protocol: PrivProtocol,
    priv_password: Secret,
}

fn default_vlan() -> u16 {
    1
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> u32 {
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v3_and_redacts() {
        let c = SnmpConfig::from_yaml(
            "address: \"127.0.0.1:1161\"\nretries: 1\nv3:\n  user: u\n  auth_password: hunter2auth\n  priv_password: hunter2priv\n",
        )
        .unwrap();
        assert_eq!(c.retries, 1);
        assert_eq!(c.vlan, 1);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn rejects_ambiguous_and_unknown() {
        assert!(SnmpConfig::from_yaml("address: a:1\n").is_err());
        assert!(SnmpConfig::from_yaml("address: a:1\nv2c: {community: x}\ncomunity: y\n").is_err());
        let both = "address: a:1\nv2c: {community: x}\nv3: {user: u, auth_password: a, priv_password: p}\n";
        assert!(SnmpConfig::from_yaml(both).is_err());
        let e = SnmpConfig::from_yaml("address: a:1\nvlan: 5000\nv2c: {community: topsecret}\n")
            .unwrap_err();
        assert!(!e.to_string().contains("topsecret"));
    }
}

#[cfg(test)]
mod leak_tests {
    use super::*;

    #[test]
    fn parse_errors_do_not_echo_secrets() {
        for text in [
            "address: a:1\nv2c: {community: {nested: supersecret}}\n",
            "address: a:1\nv3: {user: u, auth_password: [supersecret], priv_password: p}\n",
            "address: a:1\nv2c:\n  community: supersecret\n  extra: 1\n",
            "address: a:1\nv2c: {community: \"supersecret\n",
        ] {
            let e = SnmpConfig::from_yaml(text).unwrap_err().to_string();
            println!("{e}");
            assert!(!e.contains("supersecret"), "{e}");
        }
    }
}
