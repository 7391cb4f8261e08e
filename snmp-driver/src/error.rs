//! [`SnmpError`]: every way talking to a switch can fail, worded for the operator.

use std::time::Duration;

/// An SNMP operation failed. `Display` says what to do; [`SnmpError::nak_reason`] gives a
/// short stable tag for NAK messages and metrics.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    /// No answer at all within the timeout, on every attempt.
    #[error(
        "switch {address} unreachable: no answer to {attempts} SNMP request(s) within {timeout:?} each; check the address and port, that the SNMP agent runs, and any firewall{hint}"
    )]
    Unreachable {
        /// Extra advice (for v2c: a wrong community also looks like this when the agent
        /// does not speak SNMPv3 to tell the cases apart). Empty or starts with "; ".
        hint: &'static str,
        /// `host:port`.
        address: String,
        /// Requests sent.
        attempts: u32,
        /// Time waited for each.
        timeout: Duration,
    },
    /// ICMP port unreachable: nothing listens on the port.
    #[error(
        "switch {address} refused SNMP (nothing listens on that UDP port); check the port and that the SNMP agent runs"
    )]
    Refused {
        /// `host:port`.
        address: String,
    },
    /// v2c requests are ignored, but the agent answers SNMPv3 discovery: the community is
    /// wrong or not allowed from this host.
    #[error(
        "switch {address} is up but ignores our SNMPv2c requests: the community string is wrong or has no access from this host; fix `v2c.community` in the credentials file"
    )]
    BadCommunity {
        /// `host:port`.
        address: String,
    },
    /// SNMPv3 USM rejected us (unknown user, wrong auth or privacy password...).
    #[error(
        "SNMPv3 login to switch {address} failed ({detail}): check `v3.user`, `v3.auth_password`, `v3.priv_password` and the protocols in the credentials file"
    )]
    AuthFailed {
        /// `host:port`.
        address: String,
        /// What the SNMP library reported (never a secret).
        detail: String,
    },
    /// The object does not exist on the switch (noSuchName, noSuchObject, noSuchInstance).
    #[error(
        "switch has no object {oid} (SNMP {status}): it may not implement Q-BRIDGE-MIB or this VLAN"
    )]
    NoSuchObject {
        /// Dotted OID.
        oid: String,
        /// The SNMP status name.
        status: &'static str,
    },
    /// The switch will not write or create this object (notWritable, noCreation, readOnly,
    /// noAccess, authorizationError).
    #[error(
        "switch refused to write {oid} (SNMP {status}): the community or user has no write access to it, or the switch cannot create this row"
    )]
    NotWritable {
        /// Dotted OID.
        oid: String,
        /// The SNMP status name.
        status: &'static str,
    },
    /// The switch rejected the value (wrongValue, inconsistentValue, badValue, wrongType...),
    /// e.g. a port it does not have.
    #[error(
        "switch rejected the value written to {oid} (SNMP {status}): e.g. a port number it does not have"
    )]
    BadValue {
        /// Dotted OID.
        oid: String,
        /// The SNMP status name.
        status: &'static str,
    },
    /// The answer would not fit in one message, even for a single object.
    #[error(
        "switch answered tooBig even for a single object at {oid}; raise its maximum message size"
    )]
    TooBig {
        /// Dotted OID.
        oid: String,
    },
    /// Any other error status (genErr, commitFailed, undoFailed, resourceUnavailable).
    #[error(
        "switch failed the request at {oid} (SNMP {status}); the row may be partly written: read it back or delete it"
    )]
    AgentFailed {
        /// Dotted OID.
        oid: String,
        /// The SNMP status name.
        status: &'static str,
    },
    /// The answer could not be decoded or did not fit the MIB.
    #[error("switch {address} sent an answer that does not make sense: {detail}")]
    Protocol {
        /// `host:port`.
        address: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A local socket error.
    #[error("local socket error talking to {address}: {source}")]
    Io {
        /// `host:port`.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The caller asked for something the MIB cannot express (e.g. a port above 4096).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl SnmpError {
    /// A short, stable reason tag for NAKs and metrics.
    pub fn nak_reason(&self) -> &'static str {
        match self {
            SnmpError::Unreachable { .. } | SnmpError::Refused { .. } => "switch unreachable",
            SnmpError::BadCommunity { .. } => "snmp wrong community",
            SnmpError::AuthFailed { .. } => "snmp authentication failed",
            SnmpError::NoSuchObject { .. } => "snmp no such object",
            SnmpError::NotWritable { .. } => "snmp not writable",
            SnmpError::BadValue { .. } => "snmp value rejected",
            SnmpError::TooBig { .. } => "snmp response too big",
            SnmpError::AgentFailed { .. } => "snmp agent error",
            SnmpError::Protocol { .. } => "snmp protocol error",
            SnmpError::Io { .. } => "local socket error",
            SnmpError::InvalidRequest(_) => "invalid request",
        }
    }

    /// The dotted OID the switch's error status points at, if any.
    pub fn oid(&self) -> Option<&str> {
        match self {
            SnmpError::NoSuchObject { oid, .. }
            | SnmpError::NotWritable { oid, .. }
            | SnmpError::BadValue { oid, .. }
            | SnmpError::TooBig { oid }
            | SnmpError::AgentFailed { oid, .. } => Some(oid),
            _ => None,
        }
    }

    /// True if the failure may go away by itself (worth retrying later).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SnmpError::Unreachable { .. }
                | SnmpError::Refused { .. }
                | SnmpError::AgentFailed { .. }
                | SnmpError::Io { .. }
        )
    }
}

/// The RFC 3416 name of an error-status value.
pub fn status_name(status: u32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknownError")
}

/// Maps a non-zero error-status to an error for `oid`.
pub fn from_status(status: u32, oid: String) -> SnmpError {
    let name = status_name(status);
    match status {
        1 => SnmpError::TooBig { oid },
        2 => SnmpError::NoSuchObject { oid, status: name },
        4 | 6 | 11 | 16 | 17 | 18 => SnmpError::NotWritable { oid, status: name },
        3 | 7 | 8 | 9 | 10 | 12 => SnmpError::BadValue { oid, status: name },
        _ => SnmpError::AgentFailed { oid, status: name },
    }
}
