//! One SNMP conversation with timeouts, retries and error mapping, over snmp2's
//! `AsyncSession` (which has neither).
//!
//! - Each attempt is bounded by `tokio::time::timeout`. After a timeout the session (and its
//!   UDP socket) is dropped and a new one is opened, so a late answer to an abandoned request
//!   can never be taken for the answer to the next one.
//! - After the last timeout, an unauthenticated SNMPv3 engine discovery tells an agent that
//!   is down from one that silently drops our messages: a wrong v2c community, or (v3) a
//!   wrong privacy password (net-snmp cannot decrypt the PDU and sends no report).

use crate::config::{AuthProtocol, Credentials, PrivProtocol, SnmpConfig};
use crate::error::{SnmpError, from_status};
use crate::mib::format_oid;
use snmp2::{AsyncSession, Oid, Pdu, v3};
use std::time::{Duration, SystemTime};
use tokio::time::timeout;

/// An owned varbind value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// INTEGER.
    Integer(i64),
    /// OCTET STRING.
    Octets(Vec<u8>),
    /// Unsigned / Counter / Gauge / TimeTicks.
    Unsigned(u64),
    /// noSuchObject exception.
    NoSuchObject,
    /// noSuchInstance exception.
    NoSuchInstance,
    /// endOfMibView exception.
    EndOfMibView,
    /// Any other type, by name.
    Other(&'static str),
}

/// A request.
#[derive(Debug, Clone)]
pub enum Req {
    /// GET of several OIDs.
    Get(Vec<Vec<u32>>),
    /// GETBULK from one OID with max-repetitions.
    GetBulk(Vec<u32>, u32),
    /// SET of several varbinds in one PDU.
    Set(Vec<(Vec<u32>, Val)>),
}

/// The varbinds of a successful answer.
pub type Varbinds = Vec<(Vec<u32>, Val)>;

/// One switch connection.
pub struct Transport {
    cfg: SnmpConfig,
    session: Option<Box<AsyncSession>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.cfg.address)
            .field("open", &self.session.is_some())
            .finish()
    }
}

enum AttemptErr {
    Lib(snmp2::Error),
    Ours(SnmpError),
}

enum Attempt {
    /// No answer in time.
    Timeout,
    /// Answer or fatal error.
    Done(Result<Varbinds, SnmpError>),
    /// Try again at once (stale answer, USM time sync, ICMP refused).
    Again { refused: bool },
}

fn start_req_id() -> i32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    i32::try_from(nanos & 0x3fff_ffff).unwrap_or(1)
}

fn to_oid(oid: &[u32]) -> Result<Oid<'static>, SnmpError> {
    let v: Vec<u64> = oid.iter().map(|x| u64::from(*x)).collect();
    Oid::from(&v)
        .map_err(|_| SnmpError::InvalidRequest(format!("{} is not a valid OID", format_oid(oid))))
}

fn from_oid(oid: &Oid<'_>) -> Option<Vec<u32>> {
    oid.iter()?.map(|x| u32::try_from(x).ok()).collect()
}

fn security(cfg: &SnmpConfig) -> Option<v3::Security> {
    let Credentials::V3 {
        user,
        auth_protocol,
        auth_password,
        priv_protocol,
        priv_password,
    } = &cfg.credentials
    else {
        return None;
    };
    let auth = match auth_protocol {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    };
    let cipher = match priv_protocol {
        PrivProtocol::Aes => v3::Cipher::Aes128,
        PrivProtocol::Aes192 => v3::Cipher::Aes192,
        PrivProtocol::Aes256 => v3::Cipher::Aes256,
        PrivProtocol::Des => v3::Cipher::Des,
    };
    let mut sec = v3::Security::new(user.as_bytes(), auth_password.expose())
        .with_auth_protocol(auth)
        .with_auth(v3::Auth::AuthPriv {
            cipher,
            privacy_password: priv_password.expose().to_vec(),
        });
    if cipher.priv_key_needs_extension(&auth) {
        sec = sec.with_key_extension_method(v3::KeyExtension::Blumenthal);
    }
    Some(sec)
}

fn convert(pdu: Pdu<'_>) -> (u32, u32, Option<Varbinds>) {
    let mut out = Vec::new();
    for (oid, value) in pdu.varbinds {
        let Some(oid) = from_oid(&oid) else {
            return (pdu.error_status, pdu.error_index, None);
        };
        let v = match value {
            snmp2::Value::Integer(n) => Val::Integer(n),
            snmp2::Value::OctetString(b) => Val::Octets(b.to_vec()),
            snmp2::Value::Counter32(n)
            | snmp2::Value::Unsigned32(n)
            | snmp2::Value::Timeticks(n) => Val::Unsigned(u64::from(n)),
            snmp2::Value::Counter64(n) => Val::Unsigned(n),
            snmp2::Value::NoSuchObject => Val::NoSuchObject,
            snmp2::Value::NoSuchInstance => Val::NoSuchInstance,
            snmp2::Value::EndOfMibView => Val::EndOfMibView,
            snmp2::Value::Null => Val::Other("NULL"),
            snmp2::Value::ObjectIdentifier(_) => Val::Other("OBJECT IDENTIFIER"),
            snmp2::Value::IpAddress(_) => Val::Other("IpAddress"),
            _ => Val::Other("unsupported type"),
        };
        out.push((oid, v));
    }
    (pdu.error_status, pdu.error_index, Some(out))
}

impl Transport {
    /// A transport for `cfg`; nothing is sent until the first request.
    pub fn new(cfg: SnmpConfig) -> Self {
        Transport { cfg, session: None }
    }

    /// The configuration.
    pub fn config(&self) -> &SnmpConfig {
        &self.cfg
    }

    fn address(&self) -> String {
        self.cfg.address.clone()
    }

    fn map_lib_error(&self, e: snmp2::Error) -> Attempt {
        use snmp2::Error as E;
        match e {
            E::AuthUpdated | E::RequestIdMismatch => Attempt::Again { refused: false },
            E::Receive => Attempt::Again { refused: true },
            E::AuthFailure(kind) => Attempt::Done(Err(SnmpError::AuthFailed {
                address: self.address(),
                detail: kind.to_string(),
            })),
            E::Send => Attempt::Done(Err(SnmpError::Io {
                address: self.address(),
                source: std::io::Error::other("send failed"),
            })),
            E::AsnWrongType if matches!(self.cfg.credentials, Credentials::V3 { .. }) => {
                // net-snmp answers a USM failure (unknown user, wrong digest, decryption
                // error) with a Report PDU instead of a Response.
                Attempt::Done(Err(SnmpError::AuthFailed {
                    address: self.address(),
                    detail: "the agent answered with a USM report".into(),
                }))
            }
            other => Attempt::Done(Err(SnmpError::Protocol {
                address: self.address(),
                detail: other.to_string(),
            })),
        }
    }

    async fn open(&mut self) -> Attempt {
        let addr = self.cfg.address.clone();
        let made = match (&self.cfg.credentials, security(&self.cfg)) {
            (_, Some(sec)) => AsyncSession::new_v3(addr.as_str(), start_req_id(), sec).await,
            (Credentials::V2c { community }, None) => {
                AsyncSession::new_v2c(addr.as_str(), community.expose(), start_req_id()).await
            }
            (Credentials::V3 { .. }, None) => AsyncSession::new_v2c(addr.as_str(), b"", 0).await,
        };
        let mut sess = match made {
            Ok(s) => Box::new(s),
            Err(source) => {
                return Attempt::Done(Err(SnmpError::Io {
                    address: addr,
                    source,
                }));
            }
        };
        if matches!(self.cfg.credentials, Credentials::V3 { .. }) {
            match timeout(self.cfg.timeout, sess.init()).await {
                Err(_) => return Attempt::Timeout,
                Ok(Err(e)) => return self.map_lib_error(e),
                Ok(Ok(())) => {}
            }
        }
        self.session = Some(sess);
        Attempt::Done(Ok(Vec::new()))
    }

    async fn once(&mut self, req: &Req) -> Attempt {
        if self.session.is_none() {
            match self.open().await {
                Attempt::Done(Ok(_)) => {}
                other => return other,
            }
        }
        let Some(sess) = self.session.as_mut() else {
            return Attempt::Again { refused: false };
        };
        let fut = async {
            Ok::<_, AttemptErr>(match req {
                Req::Get(oids) => {
                    let oids: Vec<Oid<'static>> = match oids.iter().map(|o| to_oid(o)).collect() {
                        Ok(v) => v,
                        Err(e) => return Err(AttemptErr::Ours(e)),
                    };
                    let refs: Vec<&Oid<'_>> = oids.iter().collect();
                    convert(sess.get_many(&refs).await.map_err(AttemptErr::Lib)?)
                }
                Req::GetBulk(oid, reps) => {
                    let oid = to_oid(oid).map_err(AttemptErr::Ours)?;
                    convert(
                        sess.getbulk(&[&oid], 0, *reps)
                            .await
                            .map_err(AttemptErr::Lib)?,
                    )
                }
                Req::Set(vbs) => {
                    let mut oids = Vec::with_capacity(vbs.len());
                    for (o, _) in vbs {
                        oids.push(to_oid(o).map_err(AttemptErr::Ours)?);
                    }
                    let mut values = Vec::with_capacity(vbs.len());
                    for ((_, v), oid) in vbs.iter().zip(&oids) {
                        let value = match v {
                            Val::Integer(n) => snmp2::Value::Integer(*n),
                            Val::Octets(b) => snmp2::Value::OctetString(b),
                            _ => {
                                return Err(AttemptErr::Ours(SnmpError::InvalidRequest(
                                    "only INTEGER and OCTET STRING can be written".into(),
                                )));
                            }
                        };
                        values.push((oid, value));
                    }
                    convert(sess.set(&values).await.map_err(AttemptErr::Lib)?)
                }
            })
        };
        let answer = match timeout(self.cfg.timeout, fut).await {
            Err(_) => {
                // Drop the socket: a late answer must not meet the next request.
                self.session = None;
                return Attempt::Timeout;
            }
            Ok(Err(AttemptErr::Ours(e))) => return Attempt::Done(Err(e)),
            Ok(Err(AttemptErr::Lib(e))) => {
                let a = self.map_lib_error(e);
                if matches!(a, Attempt::Again { .. }) {
                    self.session = None;
                }
                return a;
            }
            Ok(Ok(a)) => a,
        };
        let (status, index, varbinds) = answer;
        let Some(varbinds) = varbinds else {
            return Attempt::Done(Err(SnmpError::Protocol {
                address: self.address(),
                detail: "an OID in the answer has a sub-identifier above 2^32".into(),
            }));
        };
        if status != 0 {
            let oid = request_oid(req, index).unwrap_or_else(|| "?".into());
            return Attempt::Done(Err(from_status(status, oid)));
        }
        Attempt::Done(Ok(varbinds))
    }

    /// Sends `req`, retrying after timeouts, and maps every failure to [`SnmpError`].
    pub async fn request(&mut self, req: &Req) -> Result<Varbinds, SnmpError> {
        let attempts = self.cfg.retries.saturating_add(1);
        let mut refused = false;
        for n in 0..attempts {
            match self.once(req).await {
                Attempt::Done(r) => return r,
                Attempt::Timeout => {
                    tracing::debug!(address = %self.cfg.address, attempt = n + 1, "SNMP timeout");
                }
                Attempt::Again { refused: r } => {
                    refused |= r;
                    if r {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
        if refused {
            return Err(SnmpError::Refused {
                address: self.address(),
            });
        }
        if self.agent_answers_v3().await {
            // The agent is up but silently drops our messages.
            return Err(match self.cfg.credentials {
                Credentials::V2c { .. } => SnmpError::BadCommunity {
                    address: self.address(),
                },
                Credentials::V3 { .. } => SnmpError::AuthFailed {
                    address: self.address(),
                    detail: "the agent answers SNMPv3 discovery but not our encrypted requests, \
                             so the privacy password or protocol is probably wrong"
                        .into(),
                },
            });
        }
        let hint = match self.cfg.credentials {
            Credentials::V2c { .. } => {
                "; it did not answer SNMPv3 discovery either, but an agent without SNMPv3 \
                 also ignores a wrong community silently"
            }
            Credentials::V3 { .. } => "",
        };
        Err(SnmpError::Unreachable {
            hint,
            address: self.address(),
            attempts,
            timeout: self.cfg.timeout,
        })
    }

    /// True if an unauthenticated SNMPv3 engine discovery gets an answer.
    async fn agent_answers_v3(&self) -> bool {
        let sec = v3::Security::new(b"", b"").with_auth(v3::Auth::NoAuthNoPriv);
        let Ok(mut s) = AsyncSession::new_v3(self.cfg.address.as_str(), start_req_id(), sec).await
        else {
            return false;
        };
        matches!(timeout(self.cfg.timeout, s.init()).await, Ok(Ok(())))
    }
}

fn request_oid(req: &Req, index: u32) -> Option<String> {
    let i = usize::try_from(index).ok()?.saturating_sub(1);
    let oid = match req {
        Req::Get(o) => o.get(i)?.clone(),
        Req::GetBulk(o, _) => o.clone(),
        Req::Set(v) => v.get(i)?.0.clone(),
    };
    Some(format_oid(&oid))
}
