//! `ofp_port` and OFPT_PORT_STATUS.

use bytes::{BufMut, BytesMut};

use crate::wire::{PResult, array, pad, u8_, u32_};

/// Highest regular port number.
pub const OFPP_MAX: u32 = 0xffff_ff00;
/// Send back out of the input port.
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
/// Submit to the first flow table (PACKET_OUT only).
pub const OFPP_TABLE: u32 = 0xffff_fff9;
/// All ports except input (and those with flooding disabled).
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
/// All ports except input.
pub const OFPP_ALL: u32 = 0xffff_fffc;
/// The controller.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
/// The local (bridge-internal) port.
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// Wildcard port.
pub const OFPP_ANY: u32 = 0xffff_ffff;

/// Port status reason ADD.
pub const OFPPR_ADD: u8 = 0;
/// Port status reason DELETE.
pub const OFPPR_DELETE: u8 = 1;
/// Port status reason MODIFY.
pub const OFPPR_MODIFY: u8 = 2;

/// Size of `ofp_port` on the wire.
pub const PORT_LEN: usize = 64;

/// `ofp_port` (64 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// Port number.
    pub port_no: u32,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Name, NUL-padded (see [`Port::name`]).
    pub name: [u8; 16],
    /// `OFPPC_*` bits.
    pub config: u32,
    /// `OFPPS_*` bits.
    pub state: u32,
    /// Current features.
    pub curr: u32,
    /// Advertised features.
    pub advertised: u32,
    /// Supported features.
    pub supported: u32,
    /// Peer's features.
    pub peer: u32,
    /// Current speed, kbps.
    pub curr_speed: u32,
    /// Max speed, kbps.
    pub max_speed: u32,
}

impl Port {
    /// The name up to the first NUL, lossily as UTF-8.
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    /// Whether `OFPPS_LINK_DOWN` is set.
    pub fn link_down(&self) -> bool {
        self.state & 1 != 0
    }

    pub(crate) fn parse(i: &[u8]) -> PResult<'_, Port> {
        let (i, port_no) = u32_(i)?;
        let (i, ()) = pad(i, 4)?;
        let (i, hw_addr) = array::<6>(i)?;
        let (i, ()) = pad(i, 2)?;
        let (i, name) = array::<16>(i)?;
        let (i, config) = u32_(i)?;
        let (i, state) = u32_(i)?;
        let (i, curr) = u32_(i)?;
        let (i, advertised) = u32_(i)?;
        let (i, supported) = u32_(i)?;
        let (i, peer) = u32_(i)?;
        let (i, curr_speed) = u32_(i)?;
        let (i, max_speed) = u32_(i)?;
        Ok((
            i,
            Port {
                port_no,
                hw_addr,
                name,
                config,
                state,
                curr,
                advertised,
                supported,
                peer,
                curr_speed,
                max_speed,
            },
        ))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.port_no);
        buf.put_bytes(0, 4);
        buf.put_slice(&self.hw_addr);
        buf.put_bytes(0, 2);
        buf.put_slice(&self.name);
        for v in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            buf.put_u32(v);
        }
    }
}

/// OFPT_PORT_STATUS body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStatus {
    /// `OFPPR_*`.
    pub reason: u8,
    /// The port.
    pub port: Port,
}

impl PortStatus {
    pub(crate) fn parse(i: &[u8]) -> PResult<'_, PortStatus> {
        let (i, reason) = u8_(i)?;
        let (i, ()) = pad(i, 7)?;
        let (i, port) = Port::parse(i)?;
        Ok((i, PortStatus { reason, port }))
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.reason);
        buf.put_bytes(0, 7);
        self.port.encode(buf);
    }
}
