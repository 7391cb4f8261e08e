//! One OpenFlow connection from the switch: handshake, request/reply routing by
//! xid, echo, MAC learning from PACKET_IN, port tracking, and reconciliation.

use super::pipeline;
use super::{
    COOKIE_KIND_MASK, Owned, SUBSET_COOKIE, Shared, flow_for, group_mod_for, is_subset_gid,
};
use crate::backend::BackendError;
use futures::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;
use subcast_ofp13::flow_mod::{OFP_NO_BUFFER, OFPFC_DELETE, OFPTT_ALL};
use subcast_ofp13::group_mod::{OFPG_ANY, OFPGC_ADD, OFPGC_DELETE, OFPGC_MODIFY};
use subcast_ofp13::port::{OFPP_ANY, OFPP_FLOOD, OFPP_MAX, OFPP_TABLE, OFPPR_DELETE};
use subcast_ofp13::{
    Action, FlowMod, FlowStatsRequest, Frame, GroupDesc, GroupMod, Hello, Match, Message,
    MultipartReply, MultipartReplyBody, MultipartRequest, MultipartRequestBody, OFP_VERSION,
    OfpCodec, PacketIn, PacketOut, SwitchConfig,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// The live connection, as seen by requests.
#[derive(Debug)]
pub(super) struct ConnHandle {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Frame>,
    /// Frames with these xids go to the request that sent them.
    pub waiters: HashMap<u32, mpsc::UnboundedSender<Frame>>,
}

/// Removes a request's xids from the routing table when the request ends.
struct WaiterGuard<'a> {
    shared: &'a Shared,
    xids: Vec<u32>,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if let Some(c) = st.conn.as_mut() {
            for x in &self.xids {
                c.waiters.remove(x);
            }
        }
    }
}

impl Shared {
    /// Sends `msgs` then a BARRIER_REQUEST, and returns every frame the switch sent
    /// back with one of their xids (replies and errors) once the barrier reply
    /// arrives. A barrier reply means the switch has applied everything before it.
    pub(super) async fn transact(&self, msgs: Vec<Message>) -> Result<Vec<Frame>, BackendError> {
        let frames = msgs
            .into_iter()
            .map(|m| Frame::new(self.next_xid(), m))
            .collect();
        self.transact_frames(frames).await
    }

    /// As [`Shared::transact`] with frames whose xids the caller chose (from
    /// [`Shared::next_xid`]): bundled messages must carry their ADD's xid.
    pub(super) async fn transact_frames(
        &self,
        frames: Vec<Frame>,
    ) -> Result<Vec<Frame>, BackendError> {
        self.transact_frames_also(frames, &[]).await
    }

    /// As [`Shared::transact_frames`], also collecting frames with the xids in
    /// `also` (earlier requests the switch may still answer: a bundle commit
    /// reports a failed bundled message with that message's xid).
    pub(super) async fn transact_frames_also(
        &self,
        frames: Vec<Frame>,
        also: &[u32],
    ) -> Result<Vec<Frame>, BackendError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut xids = Vec::with_capacity(frames.len() + 1 + also.len());
        {
            let mut st = self.lock();
            let conn = st.conn.as_mut().ok_or_else(|| self.not_connected())?;
            for x in also {
                conn.waiters.insert(*x, tx.clone());
                xids.push(*x);
            }
            let barrier = Frame::new(self.next_xid(), Message::BarrierRequest);
            for f in frames.into_iter().chain([barrier]) {
                conn.waiters.insert(f.xid, tx.clone());
                xids.push(f.xid);
                conn.tx.send(f).map_err(|_| self.not_connected())?;
            }
        }
        drop(tx);
        let barrier = *xids.last().unwrap_or(&0);
        let _guard = WaiterGuard { shared: self, xids };
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => {
                    return Err(BackendError::Unreachable(format!(
                        "switch did not confirm within {} ms (no BARRIER_REPLY); check \
                         ovs-vswitchd is running and its controller is {}",
                        self.config.request_timeout_ms,
                        self.listen_addr()
                    )));
                }
                Ok(None) => return Err(self.not_connected()),
                Ok(Some(f)) if f.xid == barrier && f.message == Message::BarrierReply => {
                    return Ok(out);
                }
                Ok(Some(f)) => out.push(f),
            }
        }
    }

    /// Sends without waiting (learning flows, packet-outs).
    fn send(&self, tx: &mpsc::UnboundedSender<Frame>, m: Message) {
        let _ = tx.send(Frame::new(self.next_xid(), m));
    }
}

/// Group descriptions and subset flows currently on the switch.
pub(super) async fn read_switch(
    shared: &Shared,
) -> Result<(Vec<GroupDesc>, Vec<subcast_ofp13::FlowStats>), BackendError> {
    let frames = shared
        .transact(vec![
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::GroupDesc,
            }),
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::Flow(FlowStatsRequest::all(
                    SUBSET_COOKIE,
                    COOKIE_KIND_MASK,
                )),
            }),
        ])
        .await?;
    super::check_errors(&frames)?;
    let (mut groups, mut flows) = (Vec::new(), Vec::new());
    for f in frames {
        match f.message {
            Message::MultipartReply(MultipartReply {
                body: MultipartReplyBody::GroupDesc(g),
                ..
            }) => groups.extend(g),
            Message::MultipartReply(MultipartReply {
                body: MultipartReplyBody::Flow(fl),
                ..
            }) => flows.extend(fl),
            _ => {}
        }
    }
    Ok((groups, flows))
}

/// The switch's limit on groups of type ALL (GROUP_FEATURES), if it answers.
async fn group_limit(shared: &Shared) -> Option<u32> {
    let frames = shared
        .transact(vec![Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body: MultipartRequestBody::GroupFeatures,
        })])
        .await
        .ok()?;
    frames.into_iter().find_map(|f| match f.message {
        Message::MultipartReply(MultipartReply {
            body: MultipartReplyBody::GroupFeatures(g),
            ..
        }) => Some(g.max_groups[usize::from(subcast_ofp13::group_mod::OFPGT_ALL)]),
        _ => None,
    })
}

/// Accepts switch connections forever; a new connection replaces the old one.
pub(super) async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut next_id = 1u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let id = next_id;
                next_id += 1;
                tracing::info!(%peer, id, "OpenFlow switch connected");
                let _ = stream.set_nodelay(true);
                let task = tokio::spawn(run_session(stream, shared.clone(), id));
                let mut st = shared.lock();
                st.sessions.retain(|h| !h.is_finished());
                st.sessions.push(task.abort_handle());
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting OpenFlow connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn run_session(stream: TcpStream, shared: Arc<Shared>, id: u64) {
    if let Err(e) = session(stream, &shared, id).await {
        tracing::warn!(id, error = %e, "OpenFlow session ended");
    }
    let mut st = shared.lock();
    if st.conn.as_ref().is_some_and(|c| c.id == id) {
        st.conn = None;
        drop(st);
        shared.ready.send_replace(None);
    }
}

async fn session(stream: TcpStream, shared: &Arc<Shared>, id: u64) -> Result<(), BackendError> {
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, OfpCodec);
    let mut writer = FramedWrite::new(w, OfpCodec);
    let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
    let write_task = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if let Err(e) = writer.send(f).await {
                tracing::warn!(error = %e, "OpenFlow write failed");
                break;
            }
        }
    });
    let _abort = AbortOnDrop(write_task);
    let io = |e: subcast_ofp13::CodecError| BackendError::Unreachable(format!("OpenFlow: {e}"));
    tx.send(Frame::new(shared.next_xid(), Message::Hello(Hello::of13())))
        .map_err(|_| shared.not_connected())?;
    let hello = tokio::time::timeout(shared.config.request_timeout(), reader.next())
        .await
        .map_err(|_| BackendError::Unreachable("switch sent no HELLO".into()))?
        .ok_or_else(|| BackendError::Unreachable("switch closed before HELLO".into()))?
        .map_err(io)?;
    let ok = match &hello.message {
        Message::Hello(h) => h.supports_of13().unwrap_or(hello.version >= OFP_VERSION),
        _ => false,
    };
    if !ok {
        return Err(BackendError::Refused(format!(
            "switch does not offer OpenFlow 1.3 (first message {hello:?}); run \
             ovs-vsctl set bridge BR protocols=OpenFlow13"
        )));
    }
    {
        let mut st = shared.lock();
        st.conn = Some(ConnHandle {
            id,
            tx: tx.clone(),
            waiters: HashMap::new(),
        });
        st.ports.clear();
    }
    // Operations wait until this connection's handshake and reconciliation are done.
    shared.ready.send_replace(None);
    let reader_task = tokio::spawn(read_loop(reader, shared.clone(), tx.clone()));
    let mut reader_guard = AbortOnDrop(reader_task);
    handshake(shared).await?;
    shared.ready.send_replace(Some(id));
    tracing::info!(id, "OpenFlow switch ready");
    // Wait for the reader to end (connection closed).
    let _ = (&mut reader_guard.0).await;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// FEATURES, SET_CONFIG, ports; then the pipeline with the learned flows; then
/// reconciliation.
///
/// Learned locations survive a reconnect of the same datapath (e.g. a restarted
/// ovs-vswitchd, which has lost every flow): their flows are re-installed, so hosts
/// whose traffic no longer reaches the controller stay placed. A different datapath
/// starts with empty tables; MACs on ports that no longer exist are dropped.
async fn handshake(shared: &Shared) -> Result<(), BackendError> {
    let frames = shared
        .transact(vec![
            Message::FeaturesRequest,
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::PortDesc,
            }),
        ])
        .await?;
    super::check_errors(&frames)?;
    let mut ports = BTreeMap::new();
    let mut dpid = None;
    for f in frames {
        match f.message {
            Message::FeaturesReply(fr) => dpid = Some(fr.datapath_id),
            Message::MultipartReply(MultipartReply {
                body: MultipartReplyBody::PortDesc(p),
                ..
            }) => ports.extend(p.iter().map(|p| (p.port_no, p.name()))),
            _ => {}
        }
    }
    let (guard, learned) = {
        let mut st = shared.lock();
        if dpid.is_none() || st.datapath_id != dpid {
            st.macs.clear();
            st.ipv6.clear();
        }
        st.macs.retain(|_, p| ports.contains_key(p));
        let st = &mut *st;
        st.ipv6.retain(|_, m| st.macs.contains_key(m));
        st.datapath_id = dpid;
        st.ports = ports;
        let learned: Vec<([u8; 6], u32)> = st.macs.iter().map(|(m, p)| (*m, *p)).collect();
        (st.guard, learned)
    };
    let mut msgs = pipeline::base_flows(shared.config.flood_unknown_multicast, guard);
    let idle = shared.config.learn_idle_timeout_s;
    for (mac, port) in &learned {
        msgs.extend(pipeline::learned_flows(*mac, *port, idle));
    }
    let frames = shared.transact(msgs).await?;
    super::check_errors(&frames)?;
    tracing::debug!(hosts = learned.len(), "re-installed learned flows");
    reconcile(shared).await
}

/// Deletes subset groups (and their flows) the agent does not own, and re-pushes the
/// ones it does own so the switch holds exactly the agent's view.
async fn reconcile(shared: &Shared) -> Result<(), BackendError> {
    let (groups, _flows) = read_switch(shared).await?;
    let others = groups.iter().filter(|g| !is_subset_gid(g.group_id)).count();
    let capacity = group_limit(shared)
        .await
        .map(|max| max.saturating_sub(u32::try_from(others).unwrap_or(u32::MAX)));
    tracing::info!(
        ?capacity,
        other_groups = others,
        "OpenFlow group table capacity"
    );
    shared.lock().capacity = capacity;
    let owned: Vec<((u16, Ipv6Addr), Owned)> = shared
        .lock()
        .owned
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let on_switch: Vec<u32> = groups
        .iter()
        .map(|g| g.group_id)
        .filter(|g| is_subset_gid(*g))
        .collect();
    let mut msgs = Vec::new();
    let mut stale = 0;
    for gid in &on_switch {
        if !owned.iter().any(|(_, o)| o.gid == *gid) {
            stale += 1;
            msgs.push(delete_by_cookie(SUBSET_COOKIE | u64::from(*gid)));
            msgs.push(Message::GroupMod(GroupMod {
                command: OFPGC_DELETE,
                group_type: 0,
                group_id: *gid,
                buckets: vec![],
            }));
        }
    }
    for ((vlan, group), o) in &owned {
        let cmd = if on_switch.contains(&o.gid) {
            OFPGC_MODIFY
        } else {
            OFPGC_ADD
        };
        msgs.push(Message::GroupMod(group_mod_for(cmd, o.gid, &o.ports)));
        msgs.push(Message::FlowMod(flow_for(*vlan, *group, o.gid)));
    }
    if !msgs.is_empty() {
        let frames = shared.transact(msgs).await?;
        super::check_errors(&frames)?;
    }
    tracing::info!(
        stale,
        kept = owned.len(),
        "reconciled subset groups with the switch"
    );
    Ok(())
}

async fn read_loop(
    mut reader: FramedRead<tokio::net::tcp::OwnedReadHalf, OfpCodec>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Frame>,
) {
    while let Some(next) = reader.next().await {
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "closing OpenFlow connection");
                break;
            }
        };
        match frame.message {
            Message::EchoRequest(d) => {
                let _ = tx.send(Frame::new(frame.xid, Message::EchoReply(d)));
            }
            Message::PacketIn(p) => learn(&shared, &tx, p),
            Message::PortStatus(ps) => {
                let mut st = shared.lock();
                if ps.reason == OFPPR_DELETE {
                    let port = ps.port.port_no;
                    st.ports.remove(&port);
                    st.macs.retain(|_, p| *p != port);
                    drop(st);
                    for m in pipeline::forget_port(port) {
                        shared.send(&tx, m);
                    }
                } else {
                    st.ports.insert(ps.port.port_no, ps.port.name());
                }
            }
            _ => {
                let waiter = shared
                    .lock()
                    .conn
                    .as_ref()
                    .and_then(|c| c.waiters.get(&frame.xid).cloned());
                match waiter {
                    Some(w) => {
                        let _ = w.send(frame);
                    }
                    None => {
                        if let Message::Error(e) = &frame.message {
                            tracing::warn!(
                                xid = frame.xid,
                                typ = e.typ,
                                code = e.code,
                                "OpenFlow error for an unsolicited request"
                            );
                        } else {
                            tracing::debug!(?frame, "unsolicited OpenFlow message");
                        }
                    }
                }
            }
        }
    }
}

/// Learns from a PACKET_IN: source MAC -> in_port (installing the table-0 source
/// flow and the table-1 forwarding flow), IPv6 source -> MAC. A table miss is then
/// resubmitted to table 0 (now known); ND copies are only learned from.
fn learn(shared: &Shared, tx: &mpsc::UnboundedSender<Frame>, p: PacketIn) {
    let (Some(in_port), Some(hdr)) = (p.in_port(), p.data.get(..14)) else {
        return;
    };
    let dst: [u8; 6] = hdr[0..6].try_into().unwrap_or_default();
    let src: [u8; 6] = hdr[6..12].try_into().unwrap_or_default();
    let mut ethertype = u16::from_be_bytes([hdr[12], hdr[13]]);
    let mut l3 = 14;
    if ethertype == 0x8100
        && let Some(t) = p.data.get(16..18)
    {
        ethertype = u16::from_be_bytes([t[0], t[1]]);
        l3 = 18;
    }
    let learnable = src[0] & 1 == 0 && src != [0; 6] && in_port <= OFPP_MAX;
    let ipv6_dst = (ethertype == 0x86dd)
        .then(|| p.data.get(l3 + 24..l3 + 40))
        .flatten()
        .and_then(|a| <[u8; 16]>::try_from(a).ok())
        .map(Ipv6Addr::from);
    let (known_dst, guarded) = {
        let mut st = shared.lock();
        let guarded = st.guard.zip(ipv6_dst).is_some_and(|(g, d)| g.contains(&d));
        if learnable {
            st.macs.insert(src, in_port);
            if ethertype == 0x86dd
                && let Some(a) = p.data.get(l3 + 8..l3 + 24)
            {
                let a: [u8; 16] = a.try_into().unwrap_or_default();
                let ip = Ipv6Addr::from(a);
                if !ip.is_unspecified() && !ip.is_multicast() {
                    st.ipv6.insert(ip, src);
                }
            }
        }
        let known = if dst[0] & 1 == 0 {
            st.macs.get(&dst).copied()
        } else {
            None
        };
        (known, guarded)
    };
    if learnable {
        // A PACKET_IN from this host proves its table-0 flow is missing.
        for m in pipeline::learned_flows(src, in_port, shared.config.learn_idle_timeout_s) {
            shared.send(tx, m);
        }
    }
    if p.cookie == pipeline::NDP_COOKIE {
        return; // the switch forwards the original itself
    }
    let port = if learnable {
        OFPP_TABLE
    } else {
        // Not learnable (odd source): forward here, never resubmit (it would miss again).
        // IPv6 multicast beyond link-local scope (ff0X, X > 2) without a flow.
        let wide_mcast = ipv6_dst.is_some_and(|d| d.is_multicast() && d.octets()[1] & 0x0f > 2);
        match known_dst {
            _ if guarded => return,
            Some(p) if p == in_port => return,
            Some(p) => p,
            None if wide_mcast && !shared.config.flood_unknown_multicast => return,
            None => OFPP_FLOOD,
        }
    };
    let data = if p.buffer_id == OFP_NO_BUFFER {
        p.data
    } else {
        Vec::new()
    };
    shared.send(
        tx,
        Message::PacketOut(PacketOut {
            buffer_id: p.buffer_id,
            in_port,
            actions: vec![Action::output(port)],
            data,
        }),
    );
}

/// Flow deletes use these wildcards.
pub(super) fn delete_by_cookie(cookie: u64) -> Message {
    Message::FlowMod(FlowMod {
        command: OFPFC_DELETE,
        table_id: OFPTT_ALL,
        cookie,
        cookie_mask: u64::MAX,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        ..FlowMod::add(0, Match::default(), vec![])
    })
}
