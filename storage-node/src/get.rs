//! The client side of gets, without I/O: finding a name's version
//! manifests ([`ManifestLookup`]) and fetching one verified chunk from any
//! holder ([`GetMachine`]).

use crate::members::Round;
use crate::outgoing::{To, Transmit};
use crate::receive::{NACK_RANGES, Reassembly};
use std::collections::VecDeque;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{
    GetFetch, GetRequest, Hash32, ManifestQuery, OfferStatus, ReplicastMessage,
};

/// Timing of gets and lookups.
#[derive(Debug, Clone, Copy)]
pub struct GetTimers {
    /// Wait for offers before asking the group again.
    pub offer_timeout: Duration,
    /// GET_REQUEST / MANIFEST_QUERY rounds before giving up.
    pub max_queries: u32,
    /// No new datagram for this long: ask for the missing ranges.
    pub fetch_idle: Duration,
    /// FETCHes without progress before trying another holder.
    pub max_fetches: u32,
    /// Lookups with no member known: once `expect` nodes answered, wait
    /// this much more.
    pub lookup_grace: Duration,
}

impl Default for GetTimers {
    fn default() -> Self {
        GetTimers {
            offer_timeout: Duration::from_millis(250),
            max_queries: 4,
            fetch_idle: Duration::from_millis(60),
            max_fetches: 6,
            lookup_grace: Duration::from_millis(5),
        }
    }
}

/// Why a get failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    #[error(
        "chunk {chunk}: no node of negotiating group {group} could serve a verified copy ({offers} offered, {corrupt} reported corrupt copies); are the nodes running?"
    )]
    NotFound {
        chunk: String,
        group: Ipv6Addr,
        offers: usize,
        corrupt: usize,
    },
}

/// Events of a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetEvent {
    /// A holder's copy failed verification (reported by it, or by us).
    Corrupt {
        node: u32,
        chunk: Hash32,
    },
    Done(Vec<u8>),
    Failed(GetError),
}

#[derive(Debug)]
enum State {
    Querying {
        deadline: Instant,
    },
    Fetching {
        holder: usize,
        rx: Reassembly,
        deadline: Instant,
        fetches: u32,
    },
    Finished,
}

#[derive(Debug)]
struct Offer {
    node: u32,
    addr: SocketAddr,
    size: u32,
    tried: bool,
}

/// Fetching one chunk and verifying it.
#[derive(Debug)]
pub struct GetMachine {
    pub txid: u64,
    chunk_id: Hash32,
    group: Ipv6Addr,
    port: u16,
    per: usize,
    max_size: usize,
    expect_size: Option<usize>,
    t: GetTimers,
    state: State,
    offers: Vec<Offer>,
    corrupt: Vec<u32>,
    control: VecDeque<Transmit>,
    events: VecDeque<GetEvent>,
    /// GET_REQUEST rounds sent.
    queries: u32,
}

impl GetMachine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        txid: u64,
        chunk_id: Hash32,
        group: Ipv6Addr,
        port: u16,
        per: usize,
        max_size: usize,
        expect_size: Option<usize>,
        t: GetTimers,
        now: Instant,
    ) -> Self {
        let mut m = GetMachine {
            txid,
            chunk_id,
            group,
            port,
            per,
            max_size,
            expect_size,
            t,
            state: State::Querying {
                deadline: now + t.offer_timeout,
            },
            offers: Vec::new(),
            corrupt: Vec::new(),
            control: VecDeque::new(),
            events: VecDeque::new(),
            queries: 0,
        };
        m.query();
        m
    }

    fn query(&mut self) {
        self.queries += 1;
        self.control.push_back(Transmit {
            dest: crate::transport::sock_addr(self.group, self.port),
            to: To::Members(self.group),
            msg: ReplicastMessage::GetRequest(GetRequest {
                txid: self.txid,
                chunk_id: self.chunk_id,
            }),
        });
    }

    fn report_corrupt(&mut self, node: u32) {
        if !self.corrupt.contains(&node) {
            self.corrupt.push(node);
            self.events.push_back(GetEvent::Corrupt {
                node,
                chunk: self.chunk_id,
            });
        }
    }

    fn next_holder(&mut self, now: Instant) {
        let Some(i) = self.offers.iter().position(|o| !o.tried) else {
            // Rounds asked so far (not the state's: a fetch in between
            // would reset it, and a holder that offers but never serves
            // would be asked forever).
            let round = self.queries;
            if round >= self.t.max_queries {
                self.state = State::Finished;
                self.events.push_back(GetEvent::Failed(GetError::NotFound {
                    chunk: crate::chunking::short(&self.chunk_id),
                    group: self.group,
                    offers: self.offers.len(),
                    corrupt: self.corrupt.len(),
                }));
                return;
            }
            // Ask again; holders we tried may answer again.
            self.offers.retain(|o| !self.corrupt.contains(&o.node));
            for o in &mut self.offers {
                o.tried = false;
            }
            self.state = State::Querying {
                deadline: now + self.t.offer_timeout,
            };
            self.query();
            return;
        };
        let o = &mut self.offers[i];
        o.tried = true;
        let (addr, node, size) = (o.addr, o.node, o.size as usize);
        self.state = State::Fetching {
            holder: i,
            rx: Reassembly::new(size, self.per),
            deadline: now + self.t.fetch_idle * 2,
            fetches: 1,
        };
        self.control.push_back(Transmit {
            dest: addr,
            to: To::Node(node),
            msg: ReplicastMessage::GetFetch(GetFetch {
                txid: self.txid,
                chunk_id: self.chunk_id,
                datagram_payload: self.per as u16,
                ranges: Vec::new(),
            }),
        });
    }

    pub fn handle(&mut self, from: SocketAddr, sender: u32, msg: &ReplicastMessage, now: Instant) {
        match msg {
            ReplicastMessage::GetOffer(o) if o.chunk_id == self.chunk_id => match o.status {
                OfferStatus::Corrupt => {
                    self.report_corrupt(sender);
                    if let State::Fetching { holder, .. } = self.state
                        && self.offers[holder].node == sender
                    {
                        self.next_holder(now);
                    }
                }
                OfferStatus::Have => {
                    let size = o.size as usize;
                    if size > self.max_size || self.expect_size.is_some_and(|e| e != size) {
                        return;
                    }
                    if self.offers.iter().any(|x| x.node == sender)
                        || self.corrupt.contains(&sender)
                    {
                        return;
                    }
                    self.offers.push(Offer {
                        node: sender,
                        addr: from,
                        size: o.size,
                        tried: false,
                    });
                    if matches!(self.state, State::Querying { .. }) {
                        self.next_holder(now);
                    }
                }
            },
            ReplicastMessage::Data(d) => {
                let State::Fetching {
                    holder,
                    rx,
                    deadline,
                    fetches,
                } = &mut self.state
                else {
                    return;
                };
                if self.offers[*holder].addr != from {
                    return;
                }
                if rx.insert(d) == Ok(true) {
                    *deadline = now + self.t.fetch_idle;
                    *fetches = 1;
                }
                if rx.complete() {
                    let State::Fetching { holder, rx, .. } =
                        std::mem::replace(&mut self.state, State::Finished)
                    else {
                        return;
                    };
                    let payload = rx.into_payload().into_vec();
                    if crate::chunking::chunk_id(&payload) == self.chunk_id {
                        self.events.push_back(GetEvent::Done(payload));
                    } else {
                        let node = self.offers[holder].node;
                        self.report_corrupt(node);
                        self.state = State::Querying { deadline: now };
                        self.next_holder(now);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Querying { deadline, .. } if now >= *deadline => self.next_holder(now),
            State::Fetching {
                holder,
                rx,
                deadline,
                fetches,
            } if now >= *deadline => {
                if *fetches >= self.t.max_fetches {
                    self.next_holder(now);
                    return;
                }
                *fetches += 1;
                *deadline = now + self.t.fetch_idle;
                let ranges = rx.missing(NACK_RANGES);
                let (dest, node) = (self.offers[*holder].addr, self.offers[*holder].node);
                self.control.push_back(Transmit {
                    dest,
                    to: To::Node(node),
                    msg: ReplicastMessage::GetFetch(GetFetch {
                        txid: self.txid,
                        chunk_id: self.chunk_id,
                        datagram_payload: self.per as u16,
                        ranges,
                    }),
                });
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Querying { deadline, .. } | State::Fetching { deadline, .. } => Some(*deadline),
            State::Finished => None,
        }
    }

    /// Whether [`Self::poll_transmit`] has something.
    pub fn wants_to_send(&self) -> bool {
        !self.control.is_empty()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.control.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<GetEvent> {
        self.events.pop_front()
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

pub use crate::versions::FoundVersion;
use crate::versions::{VersionKey, Versions};

/// Asking a name's negotiating group which versions exist.
#[derive(Debug)]
pub struct ManifestLookup {
    pub txid: u64,
    name_hash: Hash32,
    version: u64,
    group: Ipv6Addr,
    port: u16,
    expect: usize,
    t: GetTimers,
    deadline: Instant,
    round_no: u32,
    round: Round,
    silent: Vec<u32>,
    /// Members of the group, set aside or not (0: not known).
    total: usize,
    /// Every version any member offered (all answers, not the first).
    pub versions: Versions,
    control: VecDeque<Transmit>,
    finished: bool,
}

impl ManifestLookup {
    /// `version` 0 = the newest versions; `expect` = answers that end the
    /// wait early (R) while no member is known (see [`Self::set_members`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        txid: u64,
        name_hash: Hash32,
        version: u64,
        group: Ipv6Addr,
        port: u16,
        expect: usize,
        t: GetTimers,
        now: Instant,
    ) -> Self {
        let mut m = ManifestLookup {
            txid,
            name_hash,
            version,
            group,
            port,
            expect: expect.max(1),
            t,
            deadline: now + t.offer_timeout,
            round_no: 1,
            round: Round::default(),
            silent: Vec::new(),
            total: 0,
            versions: Versions::new(),
            control: VecDeque::new(),
            finished: false,
        };
        m.query();
        m
    }

    fn query(&mut self) {
        self.control.push_back(Transmit {
            dest: crate::transport::sock_addr(self.group, self.port),
            to: To::Members(self.group),
            msg: ReplicastMessage::ManifestQuery(ManifestQuery {
                txid: self.txid,
                name_hash: self.name_hash,
                version: self.version,
            }),
        });
    }

    /// The group's members known to the owner: the lookup ends once all
    /// of them answered (every member answers, with no versions if it
    /// holds none) and they are enough (see [`Self::set_total`]).
    pub fn set_members(&mut self, members: Vec<u32>) {
        self.round.set_expected(members);
    }

    /// How many members the group has (configured or ever heard from,
    /// also those set aside for now: [`crate::members::Membership::all`]).
    /// The lookup ends early only once `total - R + 1` answered, however
    /// few members it waited for.
    pub fn set_total(&mut self, total: usize) {
        self.total = total;
    }

    pub fn group(&self) -> Ipv6Addr {
        self.group
    }

    /// Who answered, and which known members stayed silent until the timeout.
    pub fn round_report(&self) -> (Vec<u32>, Vec<u32>) {
        (self.round.answered().to_vec(), self.silent.clone())
    }

    pub fn handle(&mut self, sender: u32, msg: &ReplicastMessage, now: Instant) {
        let ReplicastMessage::ManifestOffer(o) = msg else {
            return;
        };
        if o.name_hash != self.name_hash || self.finished || !self.round.answer(sender) {
            return;
        }
        for v in &o.versions {
            let key = VersionKey {
                version: v.version,
                writer: v.writer,
                manifest_id: v.manifest_id,
            };
            let e = self.versions.entry(key).or_insert(FoundVersion {
                size: v.size,
                holders: Vec::new(),
            });
            e.holders.push(sender);
        }
        if self.round.complete() && self.decisive() {
            self.finished = true;
        } else if self.decisive() {
            self.deadline = self.deadline.min(now + self.t.lookup_grace);
        }
    }

    /// Enough answers to trust the outcome (then only a short grace is
    /// left). With members known: `known - R + 1` answered, so at least
    /// one of the R holders of every fully stored version is among them
    /// (every member answers, also with nothing). With none known: R
    /// answers naming a version; "no version" is never concluded from
    /// the first answers (under load the holders may be the slowest), so
    /// such a lookup runs to its timeout.
    fn decisive(&self) -> bool {
        let answered = self.round.answered().len();
        if self.informed() {
            answered >= crate::versions::quorum(self.known_members(), self.expect)
        } else {
            answered >= self.expect && !self.versions.is_empty()
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished || now < self.deadline {
            return;
        }
        // No answer at all: the group is down or unreachable; one more try.
        // Too few to trust "none" (members known): ask until `max_queries`,
        // each round adding the answers that were lost or late.
        let rounds = if self.round.answered().is_empty() {
            self.t.max_queries.min(2)
        } else if self.informed() && self.versions.is_empty() && !self.decisive() {
            self.t.max_queries
        } else {
            0
        };
        if self.round_no < rounds {
            self.round_no += 1;
            self.deadline = now + self.t.offer_timeout;
            self.query();
            return;
        }
        // Ended by its grace: the members still out are slow, not gone.
        if !self.decisive() {
            self.silent = self.round.silent();
        }
        self.finished = true;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then_some(self.deadline)
    }

    /// Whether [`Self::poll_transmit`] has something.
    pub fn wants_to_send(&self) -> bool {
        !self.control.is_empty()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.control.pop_front()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Nodes that answered.
    pub fn responders(&self) -> &[u32] {
        self.round.answered()
    }

    /// Members the lookup waited for (0: none known).
    pub fn known_members(&self) -> usize {
        self.round.expected_len().max(self.total)
    }

    fn informed(&self) -> bool {
        self.known_members() > 0
    }
}
