//! OXM match fields (`ofp_oxm_header` + value) and the `ofp_match` container.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use crate::wire::{Error, PResult, array, fail, list, pad, take, u16_, u32_};

/// OXM class of the OpenFlow basic fields.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// `ofp_match.type` for OXM matches.
pub const OFPMT_OXM: u16 = 1;

const IN_PORT: u8 = 0;
const ETH_DST: u8 = 3;
const ETH_SRC: u8 = 4;
const ETH_TYPE: u8 = 5;
const VLAN_VID: u8 = 6;
const IPV4_DST: u8 = 12;
const IPV6_DST: u8 = 27;

/// `OFPVID_PRESENT`: set in `VlanVid` values that match a tagged frame.
pub const OFPVID_PRESENT: u16 = 0x1000;

/// One OXM TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oxm {
    /// OFPXMT_OFB_IN_PORT.
    InPort(u32),
    /// OFPXMT_OFB_ETH_TYPE.
    EthType(u16),
    /// OFPXMT_OFB_ETH_DST, optionally masked.
    EthDst {
        /// Address.
        addr: [u8; 6],
        /// Mask (None = exact).
        mask: Option<[u8; 6]>,
    },
    /// OFPXMT_OFB_ETH_SRC, optionally masked.
    EthSrc {
        /// Address.
        addr: [u8; 6],
        /// Mask (None = exact).
        mask: Option<[u8; 6]>,
    },
    /// OFPXMT_OFB_VLAN_VID (12-bit VID | [`OFPVID_PRESENT`]), optionally masked.
    VlanVid {
        /// VID value.
        vid: u16,
        /// Mask (None = exact).
        mask: Option<u16>,
    },
    /// OFPXMT_OFB_IPV4_DST, optionally masked (prerequisite: `EthType(0x0800)`).
    Ipv4Dst {
        /// Address.
        addr: Ipv4Addr,
        /// Mask (None = exact).
        mask: Option<Ipv4Addr>,
    },
    /// OFPXMT_OFB_IPV6_DST, optionally masked.
    Ipv6Dst {
        /// Address.
        addr: Ipv6Addr,
        /// Mask (None = exact).
        mask: Option<Ipv6Addr>,
    },
    /// Any other field (or a known field with an unexpected length), kept raw.
    Other {
        /// OXM class.
        class: u16,
        /// 7-bit field number.
        field: u8,
        /// The has-mask bit.
        has_mask: bool,
        /// Value (and mask, if any), at most 255 bytes.
        value: Vec<u8>,
    },
}

fn ipv6(b: [u8; 16]) -> Ipv6Addr {
    Ipv6Addr::from(b)
}

impl Oxm {
    /// Parses one OXM TLV.
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Oxm> {
        let (i, h) = u32_(i)?;
        let class = (h >> 16) as u16;
        let field = ((h >> 9) & 0x7f) as u8;
        let has_mask = (h >> 8) & 1 == 1;
        let len = (h & 0xff) as usize;
        let (rest, v) = take(i, len)?;
        let known = match (class == OFPXMC_OPENFLOW_BASIC, field, has_mask, len) {
            (true, IN_PORT, false, 4) => u32_(v).ok().map(|(_, p)| Oxm::InPort(p)),
            (true, ETH_TYPE, false, 2) => u16_(v).ok().map(|(_, t)| Oxm::EthType(t)),
            (true, ETH_DST | ETH_SRC, false, 6) | (true, ETH_DST | ETH_SRC, true, 12) => {
                let (v, addr) = array::<6>(v)?;
                let mask = if has_mask {
                    Some(array::<6>(v)?.1)
                } else {
                    None
                };
                Some(if field == ETH_DST {
                    Oxm::EthDst { addr, mask }
                } else {
                    Oxm::EthSrc { addr, mask }
                })
            }
            (true, VLAN_VID, false, 2) | (true, VLAN_VID, true, 4) => {
                let (v, vid) = u16_(v)?;
                let mask = if has_mask { Some(u16_(v)?.1) } else { None };
                Some(Oxm::VlanVid { vid, mask })
            }
            (true, IPV4_DST, false, 4) | (true, IPV4_DST, true, 8) => {
                let (v, addr) = array::<4>(v)?;
                let mask = if has_mask {
                    Some(Ipv4Addr::from(array::<4>(v)?.1))
                } else {
                    None
                };
                Some(Oxm::Ipv4Dst {
                    addr: Ipv4Addr::from(addr),
                    mask,
                })
            }
            (true, IPV6_DST, false, 16) | (true, IPV6_DST, true, 32) => {
                let (v, addr) = array::<16>(v)?;
                let mask = if has_mask {
                    Some(ipv6(array::<16>(v)?.1))
                } else {
                    None
                };
                Some(Oxm::Ipv6Dst {
                    addr: ipv6(addr),
                    mask,
                })
            }
            _ => None,
        };
        let oxm = known.unwrap_or_else(|| Oxm::Other {
            class,
            field,
            has_mask,
            value: v.to_vec(),
        });
        Ok((rest, oxm))
    }

    /// Appends this TLV.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let basic = |buf: &mut BytesMut, field: u8, has_mask: bool, len: usize| {
            put_header(buf, OFPXMC_OPENFLOW_BASIC, field, has_mask, len as u8);
        };
        match self {
            Oxm::InPort(p) => {
                basic(buf, IN_PORT, false, 4);
                buf.put_u32(*p);
            }
            Oxm::EthType(t) => {
                basic(buf, ETH_TYPE, false, 2);
                buf.put_u16(*t);
            }
            Oxm::EthDst { addr, mask } | Oxm::EthSrc { addr, mask } => {
                let f = if matches!(self, Oxm::EthDst { .. }) {
                    ETH_DST
                } else {
                    ETH_SRC
                };
                basic(buf, f, mask.is_some(), if mask.is_some() { 12 } else { 6 });
                buf.put_slice(addr);
                if let Some(m) = mask {
                    buf.put_slice(m);
                }
            }
            Oxm::VlanVid { vid, mask } => {
                basic(
                    buf,
                    VLAN_VID,
                    mask.is_some(),
                    if mask.is_some() { 4 } else { 2 },
                );
                buf.put_u16(*vid);
                if let Some(m) = mask {
                    buf.put_u16(*m);
                }
            }
            Oxm::Ipv4Dst { addr, mask } => {
                basic(
                    buf,
                    IPV4_DST,
                    mask.is_some(),
                    if mask.is_some() { 8 } else { 4 },
                );
                buf.put_slice(&addr.octets());
                if let Some(m) = mask {
                    buf.put_slice(&m.octets());
                }
            }
            Oxm::Ipv6Dst { addr, mask } => {
                basic(
                    buf,
                    IPV6_DST,
                    mask.is_some(),
                    if mask.is_some() { 32 } else { 16 },
                );
                buf.put_slice(&addr.octets());
                if let Some(m) = mask {
                    buf.put_slice(&m.octets());
                }
            }
            Oxm::Other {
                class,
                field,
                has_mask,
                value,
            } => {
                let len = u8::try_from(value.len()).map_err(|_| Error::FieldTooLong {
                    what: "OXM value",
                    len: value.len(),
                })?;
                put_header(buf, *class, *field, *has_mask, len);
                buf.put_slice(value);
            }
        }
        Ok(())
    }
}

fn put_header(buf: &mut BytesMut, class: u16, field: u8, has_mask: bool, len: u8) {
    let h = (u32::from(class) << 16)
        | (u32::from(field & 0x7f) << 9)
        | (u32::from(has_mask) << 8)
        | u32::from(len);
    buf.put_u32(h);
}

/// `ofp_match` of type OXM: a list of fields, padded to 8 bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    /// The fields, in wire order.
    pub fields: Vec<Oxm>,
}

impl Match {
    /// A match with these fields.
    pub fn new(fields: Vec<Oxm>) -> Self {
        Match { fields }
    }

    /// Parses an `ofp_match` including its trailing padding.
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Match> {
        let (j, typ) = u16_(i)?;
        if typ != OFPMT_OXM {
            return fail(i, "ofp_match type is not OXM (1)");
        }
        let (j, len) = u16_(j)?;
        let len = usize::from(len);
        if len < 4 {
            return fail(i, "ofp_match length below 4");
        }
        let (j, fields) = take(j, len - 4)?;
        let (_, fields) = list(fields, Oxm::parse)?;
        let (j, ()) = pad(j, len.next_multiple_of(8) - len)?;
        Ok((j, Match { fields }))
    }

    /// Appends the `ofp_match` with padding.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), Error> {
        let start = buf.len();
        buf.put_u16(OFPMT_OXM);
        let at = crate::wire::len_placeholder(buf);
        for f in &self.fields {
            f.encode(buf)?;
        }
        crate::wire::patch_len(buf, at, start, "ofp_match")?;
        crate::wire::pad_to_8(buf, start);
        Ok(())
    }
}
