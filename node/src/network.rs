//! Peer-to-peer transport: libp2p over TCP with Noise and Yamux.
//!
//! * Peers' addresses may name their host by IP address or by DNS name (`/dns/..`, `/dns4/..`,
//!   `/dns6/..`), resolved when dialled with the system's resolver configuration
//!   (`/etc/resolv.conf` on Unix).
//! * Validators listed in genesis are dialled and kept connected; a validator's libp2p identity
//!   is the `peer_id` of its genesis entry. Peers named in `p2p.peers` (full nodes, or a node's
//!   own sentries) are dialled and kept connected too. Any other peer (a full node joining) is
//!   accepted only while fewer than `max_non_validator_peers` such peers are connected, and only
//!   with an ed25519 identity, whose public key then names it; it is forgotten when its last
//!   connection closes ([`NetEvent::PeerGone`]). Each message says whether its sender is a
//!   validator, and consensus broadcasts reach validators only ([`Audience`]): what a
//!   non-validator may send is the node's to decide.
//! * The protocol name embeds the genesis hash (`/hotledger/<hash prefix>/1`), so nodes of
//!   another chain cannot even negotiate a stream with us.
//! * Every message is one request on a request-response stream, framed with a `u32` length and
//!   refused beyond `max_message_bytes` before anything is allocated; below it, the buffer
//!   grows with the bytes that arrive, not with the length claimed. The empty response is the
//!   acknowledgement.
//! * Every connection is pinged; one whose ping goes unanswered is closed as dead (a
//!   partition drops packets without closing anything), which makes its validator lost.
//! * Lost validators and configured peers are redialled with exponential backoff, each dial
//!   bounded in time.
//! * A peer the node reports for invalid data gets strikes, one forgiven per `strike_decay`;
//!   at `max_peer_strikes` (or at once for undecodable bytes) it is disconnected and banned
//!   for `ban`.
//! * Queues between this task and the node are bounded; when the node falls behind, inbound
//!   messages are dropped (consensus retransmits what matters) and counted. Every counter of
//!   [`NetStats`] is exported as a Prometheus metric.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use hotledger_crypto::{Digest, PublicKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::error::NodeError;

/// How often lost validators are checked for a redial that is due, and connections for a ping
/// answered within `dead_after`.
const DIAL_TICK: Duration = Duration::from_millis(200);

/// A validator as the network sees it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub key: PublicKey,
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
}

/// The key that names a peer that is not a validator: the ed25519 public key its peer id
/// embeds (libp2p inlines ed25519 keys in the peer id, and Noise proved the peer holds its
/// secret). `None` for a peer id of another kind of key.
pub fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Code 0 is the identity hash: the digest is the protobuf-encoded public key itself.
    if multihash.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let bytes = key.try_into_ed25519().ok()?.to_bytes();
    PublicKey::from_bytes(&bytes).ok()
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub keypair: identity::Keypair,
    pub listen: Multiaddr,
    /// All validators, including this node (skipped when dialling).
    pub validators: Vec<PeerInfo>,
    /// Other peers to dial and keep connected (`p2p.peers`): peer id and addresses.
    pub peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Most connected peers that are neither validators nor in `peers`.
    pub max_non_validator_peers: usize,
    pub genesis_hash: Digest,
    pub max_message_bytes: usize,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub max_strikes: u32,
    /// How long a peer disconnected for misbehaviour is refused.
    pub ban: Duration,
    /// One strike is forgiven per this much time (zero: strikes never decay).
    pub strike_decay: Duration,
    /// How long a request waits for its acknowledgement.
    pub request_timeout: Duration,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
    /// How often each connection is pinged.
    pub ping_interval: Duration,
    /// A ping unanswered this long closes its connection as dead.
    pub ping_timeout: Duration,
    /// Longest a dial may take to connect.
    pub dial_timeout: Duration,
    /// Most streams (requests in flight, both directions) on one connection.
    pub max_concurrent_streams: usize,
}

/// What the node asks the network to do.
#[derive(Debug)]
pub enum NetCommand {
    Send {
        to: PublicKey,
        bytes: Arc<Vec<u8>>,
    },
    Broadcast {
        bytes: Arc<Vec<u8>>,
        to: Audience,
    },
    /// The peer sent invalid data; `severe` disconnects at once.
    Penalize {
        peer: PublicKey,
        severe: bool,
    },
}

/// Whom a broadcast reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The connected validators (consensus messages, validators' transaction gossip).
    Validators,
    /// Every connected peer (sync status, snapshot offers, a full node's transactions).
    Everyone,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A peer's message; `validator` says whether the sender is a validator of genesis.
    Message {
        from: PublicKey,
        validator: bool,
        bytes: Vec<u8>,
    },
    /// A peer that is not a validator closed its last connection and is forgotten: what the
    /// node keeps about it can go.
    PeerGone { key: PublicKey },
}

/// Counters shared with the consensus loop and the metrics endpoint
/// ([`crate::metrics::Metrics::register_network`] exports each counter).
#[derive(Debug, Default)]
pub struct NetStats {
    /// Validators with at least one connection.
    pub connected_validators: AtomicUsize,
    /// Peers that are not validators with at least one connection.
    pub connected_non_validators: AtomicUsize,
    /// Peers' messages dropped because the queue to the node was full.
    pub dropped_inbound: Counter,
    /// Peers' transaction frames dropped because the queue to admission was full.
    pub dropped_tx_frames: Counter,
    /// Messages to peers dropped because the queue to the network task was full.
    pub dropped_outbound: Counter,
    /// Requests to peers that failed (no connection, timeout, stream error).
    pub send_failures: Counter,
    /// Peers' requests whose stream failed before they were read and acknowledged.
    pub inbound_failures: Counter,
    /// Dials of validators that failed.
    pub dial_failures: Counter,
    /// Times a validator's last connection closed.
    pub disconnects: Counter,
    /// Connections closed because a ping went unanswered (`p2p.ping_timeout_ms`).
    pub dead_connections: Counter,
    /// Connections closed at once: the peer is banned, or one more non-validator than
    /// `p2p.max_non_validator_peers` allows.
    pub refused_connections: Counter,
    /// Penalties the node reported against a validator.
    pub strikes: Counter,
    /// Validators disconnected and banned for misbehaviour.
    pub bans: Counter,
    /// Validators connected once since start and not now (see [`NetStats::lost_validators`]).
    lost: std::sync::Mutex<Vec<PublicKey>>,
    /// Woken when `lost` changes.
    pub lost_changed: tokio::sync::Notify,
}

impl NetStats {
    /// The validators this node was connected to and is not any more, ordered by key.
    /// A validator never connected since start is not in it: at start-up connections come up
    /// one by one, and nothing is known of the ones still to come.
    pub fn lost_validators(&self) -> Vec<PublicKey> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_lost(&self, lost: Vec<PublicKey>) {
        let mut current = self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != lost {
            *current = lost;
            self.lost_changed.notify_one();
        }
    }
}

/// Length-prefixed frames with a hard size cap.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max: usize,
}

async fn read_frame<T: futures::AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {max}"),
        ));
    }
    // The buffer grows with the bytes that arrive, never ahead of them: a peer that claims
    // `max` bytes and sends a few costs a few.
    let mut buf = Vec::with_capacity(len.min(FRAME_CHUNK));
    (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame of {len} bytes ended after {}", buf.len()),
        ));
    }
    Ok(buf)
}

/// The first allocation for a frame's body; more as its bytes arrive.
const FRAME_CHUNK: usize = 64 * 1024;

async fn write_frame<T: futures::AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

#[async_trait::async_trait]
impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Arc<Vec<u8>>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Arc<Vec<u8>>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await.map(Arc::new)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, 0).await.map(|_| ())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Arc<Vec<u8>>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &[]).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    rr: request_response::Behaviour<FrameCodec>,
    ping: ping::Behaviour,
}

/// The protocol name for a chain: peers of another genesis cannot negotiate it.
pub fn protocol_name(genesis_hash: &Digest) -> String {
    format!("/hotledger/{}/1", &genesis_hash.to_hex()[..16])
}

/// Builds the swarm: TCP with Noise and Yamux, behind a resolver of `/dns*` addresses, carrying
/// the chain's request-response protocol.
fn build_swarm(cfg: &NetworkConfig) -> Result<Swarm<Behaviour>, NodeError> {
    let protocol = StreamProtocol::try_from_owned(protocol_name(&cfg.genesis_hash))
        .map_err(|e| NodeError::Network(e.to_string()))?;
    let codec = FrameCodec {
        max: cfg.max_message_bytes,
    };
    let rr_config = request_response::Config::default()
        .with_request_timeout(cfg.request_timeout)
        .with_max_concurrent_streams(cfg.max_concurrent_streams);
    let idle = cfg.idle_connection_timeout;
    let ping = ping::Config::new()
        .with_interval(cfg.ping_interval)
        .with_timeout(cfg.ping_timeout);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(format!("transport: {e}")))?
        .with_dns()
        .map_err(|e| {
            NodeError::Network(format!(
                "DNS resolver: cannot read the system's resolver configuration \
                 (/etc/resolv.conf on Unix): {e}"
            ))
        })?
        .with_behaviour(|_| Behaviour {
            rr: request_response::Behaviour::with_codec(
                codec,
                [(protocol, ProtocolSupport::Full)],
                rr_config,
            ),
            ping: ping::Behaviour::new(ping),
        })
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .with_connection_timeout(cfg.dial_timeout)
        .build();
    Ok(swarm)
}

/// Runs the swarm until `commands` closes.
pub async fn run(
    cfg: NetworkConfig,
    mut commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
    stats: Arc<NetStats>,
) -> Result<(), NodeError> {
    let mut swarm = build_swarm(&cfg)?;
    swarm
        .listen_on(cfg.listen.clone())
        .map_err(|e| NodeError::Network(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let mut net = Net::new(swarm, &cfg, events, stats);
    let mut tick = tokio::time::interval(DIAL_TICK);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => net.on_command(cmd),
                None => return Ok(()),
            },
            _ = tick.tick() => {
                net.close_dead();
                net.dial_due();
            }
            event = net.swarm.select_next_some() => net.on_swarm_event(event),
        }
    }
}

/// How the peer table treats validators: redial backoff, strikes and bans.
#[derive(Clone, Copy, Debug)]
struct PeerPolicy {
    reconnect_initial: Duration,
    reconnect_max: Duration,
    max_strikes: u32,
    ban: Duration,
    /// One strike is forgiven per this much time without a new one.
    strike_decay: Duration,
}

impl PeerPolicy {
    fn of(cfg: &NetworkConfig) -> PeerPolicy {
        PeerPolicy {
            reconnect_initial: cfg.reconnect_initial,
            reconnect_max: cfg.reconnect_max,
            max_strikes: cfg.max_strikes,
            ban: cfg.ban,
            strike_decay: cfg.strike_decay,
        }
    }
}

#[derive(Debug)]
struct PeerState {
    info: PeerInfo,
    /// A validator of genesis (else a full node or another non-validator).
    validator: bool,
    /// Dialled and kept connected: a validator or a peer of `p2p.peers`. Any other entry is a
    /// peer that connected to this node, dropped when its last connection closes.
    dialled: bool,
    connections: usize,
    next_dial: Instant,
    backoff: Duration,
    strikes: u32,
    /// When `strikes` was last brought up to date (decayed, or struck).
    strikes_at: Instant,
    banned_until: Option<Instant>,
    /// Connected at least once since start.
    was_connected: bool,
}

impl PeerState {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| t > now)
    }
}

/// What a closed connection meant.
#[derive(Debug, PartialEq, Eq)]
enum Closed {
    /// Other connections with the peer remain, or it was not known.
    Nothing,
    /// The last connection of a dialled peer: it is redialled one backoff later.
    Lost { validator: bool },
    /// The last connection of a peer that connected to this node: it is forgotten.
    Gone(PublicKey),
}

/// Most bans of forgotten peers remembered at once (a ban outlives its peer's entry).
const MAX_REMEMBERED_BANS: usize = 4_096;

/// What a strike did.
#[derive(Debug, PartialEq, Eq)]
enum Strike {
    /// The key is not another validator's: nothing to count.
    Unknown,
    /// Counted; the peer stays.
    Counted,
    /// The peer reached the limit: it is banned and must be disconnected.
    Banned { peer: PeerId, strikes: u32 },
}

/// What this node knows of its peers: every other validator and every peer of `p2p.peers`
/// (dialled), and the non-validators connected to it (at most `max_inbound`): connections,
/// redial backoff, strikes and bans. Synchronous and without a clock: the caller passes `now`,
/// and carries out what the answers ask for (dial, disconnect) on the swarm.
#[derive(Debug)]
struct PeerTable {
    peers: HashMap<PeerId, PeerState>,
    by_key: HashMap<PublicKey, PeerId>,
    policy: PeerPolicy,
    /// Most entries that are neither validators nor dialled.
    max_inbound: usize,
    /// Bans of peers no longer in `peers` (non-validators that connected and were banned).
    bans: HashMap<PeerId, Instant>,
    /// This node: never a peer.
    me: PeerId,
}

impl PeerTable {
    /// Every validator but `me` and every peer of `peers` (named by [`peer_key`]; one of
    /// another kind of key is skipped), each due for a dial at `now`.
    fn new(
        validators: &[PeerInfo],
        peers: &[(PeerId, Vec<Multiaddr>)],
        me: PeerId,
        policy: PeerPolicy,
        max_inbound: usize,
        now: Instant,
    ) -> PeerTable {
        let mut table = PeerTable {
            peers: HashMap::new(),
            by_key: HashMap::new(),
            policy,
            max_inbound,
            bans: HashMap::new(),
            me,
        };
        for info in validators.iter().filter(|v| v.peer_id != me) {
            table.insert(info.clone(), true, true, now);
        }
        for (peer_id, addresses) in peers {
            if *peer_id == me || table.peers.contains_key(peer_id) {
                continue;
            }
            let Some(key) = peer_key(peer_id).filter(|k| !table.by_key.contains_key(k)) else {
                continue;
            };
            let info = PeerInfo {
                key,
                peer_id: *peer_id,
                addresses: addresses.clone(),
            };
            table.insert(info, false, true, now);
        }
        table
    }

    fn insert(&mut self, info: PeerInfo, validator: bool, dialled: bool, now: Instant) {
        self.by_key.insert(info.key, info.peer_id);
        let state = PeerState {
            validator,
            dialled,
            connections: 0,
            next_dial: now,
            backoff: self.policy.reconnect_initial,
            strikes: 0,
            strikes_at: now,
            banned_until: None,
            was_connected: false,
            info: info.clone(),
        };
        self.peers.insert(info.peer_id, state);
    }

    /// The peers to dial: validators and `p2p.peers`.
    fn infos(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers
            .values()
            .filter(|st| st.dialled)
            .map(|st| &st.info)
    }

    fn peer_id(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// The peer's key and whether it is a validator.
    fn key(&self, peer: &PeerId) -> Option<(PublicKey, bool)> {
        self.peers.get(peer).map(|st| (st.info.key, st.validator))
    }

    /// The peers of `audience` with at least one connection.
    fn connected(&self, audience: Audience) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .filter(move |(_, st)| {
                st.connections > 0 && (st.validator || audience == Audience::Everyone)
            })
            .map(|(pid, _)| *pid)
    }

    /// One strike against `key` (the whole limit at once if `severe`); at the limit the peer is
    /// banned until `now + ban` and its strikes start again from zero. Strikes decay: one is
    /// forgiven per `strike_decay` since the last update, so an honest validator that now and
    /// then sends something refused (a late or skewed message) is never banned for it, while
    /// a burst of `max_strikes` bans.
    fn strike(&mut self, key: &PublicKey, severe: bool, now: Instant) -> Strike {
        let Some(pid) = self.peer_id(key) else {
            return Strike::Unknown;
        };
        let Some(st) = self.peers.get_mut(&pid) else {
            return Strike::Unknown;
        };
        let decay = self.policy.strike_decay;
        if !decay.is_zero() {
            let elapsed = now.saturating_duration_since(st.strikes_at);
            let forgiven = elapsed.as_nanos() / decay.as_nanos();
            let forgiven = u32::try_from(forgiven).unwrap_or(u32::MAX);
            if forgiven > 0 {
                st.strikes = st.strikes.saturating_sub(forgiven);
                st.strikes_at = now;
            }
        }
        if st.strikes == 0 {
            st.strikes_at = now;
        }
        let max = self.policy.max_strikes;
        st.strikes = st.strikes.saturating_add(if severe { max } else { 1 });
        if st.strikes < max {
            return Strike::Counted;
        }
        let strikes = st.strikes;
        st.banned_until = now.checked_add(self.policy.ban);
        st.strikes = 0;
        Strike::Banned { peer: pid, strikes }
    }

    /// The dialled peers to dial at `now`: without a connection, not banned, and whose
    /// backoff has passed. Each one's next dial is scheduled one backoff later, and its backoff
    /// doubles up to `reconnect_max`.
    fn take_due(&mut self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let max = self.policy.reconnect_max;
        let mut due = Vec::new();
        for (pid, st) in self.peers.iter_mut() {
            if st.dialled && st.connections == 0 && !st.banned(now) && now >= st.next_dial {
                due.push((*pid, st.info.addresses.clone()));
                st.next_dial = now.checked_add(st.backoff).unwrap_or(now);
                st.backoff = st.backoff.saturating_mul(2).min(max);
            }
        }
        due
    }

    /// A connection with `peer` came up. Returns `None` if it must be closed (banned; or not
    /// known and not admissible: no ed25519 identity, a validator's key, or
    /// `max_inbound` such peers already), else whether it is the peer's first connection.
    fn on_connected(&mut self, peer: PeerId, now: Instant) -> Option<bool> {
        if !self.peers.contains_key(&peer) {
            if peer == self.me {
                return None;
            }
            self.bans.retain(|_, until| *until > now);
            if self.bans.contains_key(&peer) || self.inbound_count() >= self.max_inbound {
                return None;
            }
            let key = peer_key(&peer).filter(|k| !self.by_key.contains_key(k))?;
            let info = PeerInfo {
                key,
                peer_id: peer,
                addresses: Vec::new(),
            };
            self.insert(info, false, false, now);
        }
        let st = self.peers.get_mut(&peer).filter(|st| !st.banned(now))?;
        st.connections += 1;
        st.was_connected = true;
        st.backoff = self.policy.reconnect_initial;
        Some(st.connections == 1)
    }

    /// A connection with `peer` closed, `remaining` are left. The last one of a dialled peer
    /// schedules its redial one backoff after `now`; that of a peer that connected to this
    /// node forgets it (remembering its ban, if any).
    fn on_closed(&mut self, peer: PeerId, remaining: u32, now: Instant) -> Closed {
        let Some(st) = self.peers.get_mut(&peer) else {
            return Closed::Nothing;
        };
        let was_connected = st.connections > 0;
        st.connections = usize::try_from(remaining).unwrap_or(usize::MAX);
        if remaining > 0 || !was_connected {
            return Closed::Nothing;
        }
        if st.dialled {
            st.next_dial = now.checked_add(st.backoff).unwrap_or(now);
            return Closed::Lost {
                validator: st.validator,
            };
        }
        let key = st.info.key;
        let banned = st.banned_until.filter(|until| *until > now);
        self.peers.remove(&peer);
        self.by_key.remove(&key);
        if let Some(until) = banned {
            self.bans.retain(|_, u| *u > now);
            if self.bans.len() < MAX_REMEMBERED_BANS {
                self.bans.insert(peer, until);
            }
        }
        Closed::Gone(key)
    }

    /// Connected validators.
    fn connected_count(&self) -> usize {
        self.peers
            .values()
            .filter(|s| s.validator && s.connections > 0)
            .count()
    }

    /// Connected peers that are not validators (dialled or not).
    fn non_validator_count(&self) -> usize {
        self.peers
            .values()
            .filter(|s| !s.validator && s.connections > 0)
            .count()
    }

    /// Entries of peers that connected to this node (neither validators nor dialled).
    fn inbound_count(&self) -> usize {
        self.peers.values().filter(|s| !s.dialled).count()
    }

    /// The validators connected once since start and not now, ordered by key.
    fn lost(&self) -> Vec<PublicKey> {
        let mut lost: Vec<PublicKey> = self
            .peers
            .values()
            .filter(|s| s.validator && s.was_connected && s.connections == 0)
            .map(|s| s.info.key)
            .collect();
        lost.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        lost
    }
}

/// The swarm and the peer table; one method per event of [`run`]'s loop.
struct Net {
    swarm: Swarm<Behaviour>,
    table: PeerTable,
    events: mpsc::Sender<NetEvent>,
    stats: Arc<NetStats>,
    /// Every open connection: its peer and when it last answered a ping (or opened).
    answered: HashMap<ConnectionId, (PeerId, Instant)>,
    /// A connection that answered no ping for this long is closed as dead.
    dead_after: Duration,
}

impl Net {
    /// Knows every validator of `cfg` but this node and every peer of `cfg.peers`, each due
    /// for a dial now.
    fn new(
        mut swarm: Swarm<Behaviour>,
        cfg: &NetworkConfig,
        events: mpsc::Sender<NetEvent>,
        stats: Arc<NetStats>,
    ) -> Net {
        let me = *swarm.local_peer_id();
        let table = PeerTable::new(
            &cfg.validators,
            &cfg.peers,
            me,
            PeerPolicy::of(cfg),
            cfg.max_non_validator_peers,
            Instant::now(),
        );
        for info in table.infos() {
            for addr in &info.addresses {
                swarm.add_peer_address(info.peer_id, addr.clone());
            }
        }
        Net {
            swarm,
            table,
            events,
            stats,
            answered: HashMap::new(),
            dead_after: cfg.ping_interval.saturating_add(cfg.ping_timeout),
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Send { to, bytes } => {
                if let Some(peer) = self.table.peer_id(&to) {
                    self.swarm.behaviour_mut().rr.send_request(&peer, bytes);
                }
            }
            NetCommand::Broadcast { bytes, to } => {
                for peer in self.table.connected(to) {
                    self.swarm
                        .behaviour_mut()
                        .rr
                        .send_request(&peer, bytes.clone());
                }
            }
            NetCommand::Penalize { peer, severe } => self.penalize(peer, severe),
        }
    }

    /// A strike against `peer`; at `max_strikes` it is disconnected and banned.
    fn penalize(&mut self, peer: PublicKey, severe: bool) {
        match self.table.strike(&peer, severe, Instant::now()) {
            Strike::Unknown => {}
            Strike::Counted => {
                self.stats.strikes.inc();
            }
            Strike::Banned { peer, strikes } => {
                self.stats.strikes.inc();
                tracing::warn!(%peer, strikes, "disconnecting misbehaving peer");
                self.stats.bans.inc();
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// Dials every peer the peer table says is due.
    fn dial_due(&mut self) {
        for (pid, addresses) in self.table.take_due(Instant::now()) {
            tracing::debug!(peer = %pid, "dialling peer");
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(pid)
                .addresses(addresses)
                .build();
            // A dial still under way (slower than the backoff) is not a failure.
            match self.swarm.dial(opts) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => {
                    self.stats.dial_failures.inc();
                    tracing::debug!(peer = %pid, %error, "cannot dial peer");
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                self.answered
                    .insert(connection_id, (peer_id, Instant::now()));
                self.on_connected(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.answered.remove(&connection_id);
                self.on_closed(peer_id, num_established);
            }
            // An aborted dial (the swarm gave it up) failed nowhere.
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Aborted,
                ..
            } => {}
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.stats.dial_failures.inc();
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rr(ev)) => self.on_request_response(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ev)) => self.on_ping(ev),
            _ => {}
        }
    }

    /// Keeps a connection the peer table admits; closes any other.
    fn on_connected(&mut self, peer_id: PeerId) {
        match self.table.on_connected(peer_id, Instant::now()) {
            Some(first) => match self.table.key(&peer_id).filter(|_| first) {
                Some((key, true)) => {
                    tracing::info!(peer = %peer_id, key = %key.short(), "validator connected")
                }
                Some((key, false)) => {
                    tracing::info!(peer = %peer_id, key = %key.short(), "non-validator peer connected")
                }
                None => {}
            },
            None => {
                tracing::debug!(
                    peer = %peer_id,
                    "refusing peer: banned, no ed25519 identity, or over p2p.max_non_validator_peers"
                );
                self.stats.refused_connections.inc();
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
        }
        self.count_connected();
    }

    /// A connection answered a ping: it is alive.
    fn on_ping(&mut self, ev: ping::Event) {
        match ev.result {
            Ok(_) => {
                if let Some((_, at)) = self.answered.get_mut(&ev.connection) {
                    *at = Instant::now();
                }
            }
            Err(error) => tracing::debug!(peer = %ev.peer, %error, "ping failed"),
        }
    }

    /// Closes every connection that answered no ping for `dead_after`: a partition or a frozen
    /// peer leaves TCP "established" for as long as its retransmissions last, while nothing
    /// gets through. Closing it makes the validator lost, so it is redialled (and consensus
    /// re-sends what the round needs once it is back). The deadline is kept here rather than
    /// left to the ping protocol, which reports only a second failure in a row, and may take
    /// a stream negotiation's timeout (10 s) to find that one.
    fn close_dead(&mut self) {
        let now = Instant::now();
        let dead: Vec<(ConnectionId, PeerId)> = self
            .answered
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) > self.dead_after)
            .map(|(id, (peer, _))| (*id, *peer))
            .collect();
        for (id, peer) in dead {
            // Counted once: the entry goes now, not when the close completes.
            self.answered.remove(&id);
            tracing::info!(%peer, "peer connection answered no ping: closing it");
            self.stats.dead_connections.inc();
            let _ = self.swarm.close_connection(id);
        }
    }

    fn on_closed(&mut self, peer_id: PeerId, num_established: u32) {
        match self
            .table
            .on_closed(peer_id, num_established, Instant::now())
        {
            Closed::Nothing => {}
            Closed::Lost { validator: true } => {
                tracing::info!(peer = %peer_id, "validator disconnected");
                self.stats.disconnects.inc();
            }
            Closed::Lost { validator: false } => {
                tracing::info!(peer = %peer_id, "configured peer disconnected");
            }
            Closed::Gone(key) => {
                tracing::info!(peer = %peer_id, "non-validator peer disconnected");
                // Dropped when the node's queue is full: it then forgets the peer's state when
                // its bounded tables evict it.
                let _ = self.events.try_send(NetEvent::PeerGone { key });
            }
        }
        self.count_connected();
    }

    fn count_connected(&self) {
        self.stats
            .connected_validators
            .store(self.table.connected_count(), Ordering::Relaxed);
        self.stats
            .connected_non_validators
            .store(self.table.non_validator_count(), Ordering::Relaxed);
        self.stats.set_lost(self.table.lost());
    }

    /// Acknowledges each request and hands its bytes to the node, or drops them if the node's
    /// queue is full.
    fn on_request_response(&mut self, ev: request_response::Event<Arc<Vec<u8>>, ()>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let _ = self.swarm.behaviour_mut().rr.send_response(channel, ());
                self.deliver(peer, request);
            }
            request_response::Event::Message { .. }
            | request_response::Event::ResponseSent { .. } => {}
            request_response::Event::OutboundFailure { peer, error, .. } => {
                self.stats.send_failures.inc();
                tracing::trace!(%peer, %error, "send failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.stats.inbound_failures.inc();
                tracing::debug!(%peer, %error, "inbound stream failed");
            }
        }
    }

    /// Hands a peer's request to the node; counts it as dropped if the queue is full.
    fn deliver(&mut self, peer: PeerId, request: Arc<Vec<u8>>) {
        let Some((from, validator)) = self.table.key(&peer) else {
            return;
        };
        let bytes = Arc::try_unwrap(request).unwrap_or_else(|a| (*a).clone());
        if self
            .events
            .try_send(NetEvent::Message {
                from,
                validator,
                bytes,
            })
            .is_err()
        {
            self.stats.dropped_inbound.inc();
        }
    }
}

#[cfg(test)]
mod peer_table_tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    const INITIAL: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(350);
    const BAN: Duration = Duration::from_secs(60);
    const DECAY: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// This node and two other validators, all due at `t0`.
    struct Fixture {
        t0: Instant,
        table: PeerTable,
        me: PeerInfo,
        a: PeerInfo,
        b: PeerInfo,
    }

    fn info(seed: u8) -> PeerInfo {
        PeerInfo {
            key: KeyPair::from_seed([seed; 32]).public(),
            peer_id: identity::Keypair::generate_ed25519().public().to_peer_id(),
            addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", 9000 + u16::from(seed))
                .parse()
                .unwrap()],
        }
    }

    fn fixture() -> Fixture {
        let (me, a, b) = (info(1), info(2), info(3));
        let policy = PeerPolicy {
            reconnect_initial: INITIAL,
            reconnect_max: MAX,
            max_strikes: 3,
            ban: BAN,
            strike_decay: DECAY,
        };
        let t0 = Instant::now();
        let validators = [me.clone(), a.clone(), b.clone()];
        let table = PeerTable::new(&validators, &[], me.peer_id, policy, 1, t0);
        Fixture {
            t0,
            table,
            me,
            a,
            b,
        }
    }

    fn due(table: &mut PeerTable, now: Instant) -> Vec<PeerId> {
        let mut due: Vec<PeerId> = table.take_due(now).into_iter().map(|(p, _)| p).collect();
        due.sort();
        due
    }

    fn sorted(mut peers: Vec<PeerId>) -> Vec<PeerId> {
        peers.sort();
        peers
    }

    #[test]
    fn every_other_validator_is_due_at_once_with_its_addresses() {
        let mut f = fixture();
        assert_eq!(f.table.peer_id(&f.me.key), None);
        let mut dials = f.table.take_due(f.t0);
        dials.sort_by_key(|(peer, _)| *peer);
        let mut expected = vec![
            (f.a.peer_id, f.a.addresses.clone()),
            (f.b.peer_id, f.b.addresses.clone()),
        ];
        expected.sort_by_key(|(peer, _)| *peer);
        assert_eq!(dials, expected);
        assert!(due(&mut f.table, f.t0).is_empty());
    }

    #[test]
    fn the_backoff_doubles_up_to_the_maximum() {
        let mut f = fixture();
        // Dials at 0 and then 100 (initial), 200 and 350 (the maximum) ms apart.
        for at in [0, 100, 300, 650, 1000] {
            if at > 0 {
                assert!(
                    due(&mut f.table, f.t0 + ms(at - 1)).is_empty(),
                    "before {at} ms"
                );
            }
            assert_eq!(due(&mut f.table, f.t0 + ms(at)).len(), 2, "at {at} ms");
        }
    }

    #[test]
    fn a_connection_stops_dials_and_resets_the_backoff() {
        let mut f = fixture();
        due(&mut f.table, f.t0);
        let t = f.t0 + INITIAL;
        due(&mut f.table, t);
        assert_eq!(f.table.on_connected(f.a.peer_id, t), Some(true));
        assert_eq!(f.table.on_connected(f.a.peer_id, t), Some(false));
        assert_eq!(
            sorted(f.table.connected(Audience::Validators).collect()),
            vec![f.a.peer_id]
        );
        assert_eq!(due(&mut f.table, t + MAX), vec![f.b.peer_id]);

        // One of two connections closes: still connected.
        assert_eq!(f.table.on_closed(f.a.peer_id, 1, t), Closed::Nothing);
        assert_eq!(f.table.connected_count(), 1);
        let closed = t + ms(10);
        assert_eq!(
            f.table.on_closed(f.a.peer_id, 0, closed),
            Closed::Lost { validator: true }
        );
        assert_eq!(f.table.connected_count(), 0);
        // Redialled one initial backoff later, not before.
        assert!(!due(&mut f.table, closed + INITIAL - ms(1)).contains(&f.a.peer_id));
        assert!(due(&mut f.table, closed + INITIAL).contains(&f.a.peer_id));
    }

    #[test]
    fn only_validators_once_connected_are_lost() {
        let mut f = fixture();
        assert!(f.table.lost().is_empty());
        f.table.on_connected(f.a.peer_id, f.t0);
        f.table.on_connected(f.b.peer_id, f.t0);
        assert!(f.table.lost().is_empty());
        f.table.on_closed(f.b.peer_id, 0, f.t0);
        f.table.on_closed(f.a.peer_id, 0, f.t0);
        let mut both = vec![f.a.key, f.b.key];
        both.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        assert_eq!(f.table.lost(), both);
        f.table.on_connected(f.b.peer_id, f.t0);
        assert_eq!(f.table.lost(), vec![f.a.key]);
    }

    #[test]
    fn strikes_ban_at_the_limit_and_the_count_starts_again() {
        let mut f = fixture();
        let t = f.t0;
        assert_eq!(f.table.strike(&f.a.key, false, t), Strike::Counted);
        assert_eq!(f.table.strike(&f.a.key, false, t), Strike::Counted);
        let banned = Strike::Banned {
            peer: f.a.peer_id,
            strikes: 3,
        };
        assert_eq!(f.table.strike(&f.a.key, false, t), banned);
        assert_eq!(f.table.strike(&f.a.key, false, t), Strike::Counted);
        // Strikes of one validator do not count against another.
        assert_eq!(f.table.strike(&f.b.key, false, t), Strike::Counted);
    }

    /// One strike is forgiven per decay interval: strikes spread out never ban, a burst does.
    #[test]
    fn strikes_decay_so_only_a_burst_bans() {
        let mut f = fixture();
        for k in 0..10u32 {
            let t = f.t0 + DECAY * k;
            assert_eq!(
                f.table.strike(&f.a.key, false, t),
                Strike::Counted,
                "strike {k}"
            );
        }
        // Two now, two more within one interval: the third in a burst bans.
        let t = f.t0 + DECAY * 20;
        assert_eq!(f.table.strike(&f.a.key, false, t), Strike::Counted);
        assert_eq!(f.table.strike(&f.a.key, false, t + ms(1)), Strike::Counted);
        let banned = Strike::Banned {
            peer: f.a.peer_id,
            strikes: 3,
        };
        assert_eq!(f.table.strike(&f.a.key, false, t + ms(2)), banned);
        // Partly forgiven: two strikes, then one interval, then two more are needed for a ban.
        let t = t + DECAY * 30;
        f.table.strike(&f.b.key, false, t);
        f.table.strike(&f.b.key, false, t);
        let later = t + DECAY;
        assert_eq!(f.table.strike(&f.b.key, false, later), Strike::Counted);
        let banned_b = Strike::Banned {
            peer: f.b.peer_id,
            strikes: 3,
        };
        assert_eq!(f.table.strike(&f.b.key, false, later), banned_b);
    }

    #[test]
    fn a_severe_strike_bans_at_once_and_unknown_keys_are_ignored() {
        let mut f = fixture();
        let banned = Strike::Banned {
            peer: f.b.peer_id,
            strikes: 3,
        };
        assert_eq!(f.table.strike(&f.b.key, true, f.t0), banned);
        assert_eq!(f.table.strike(&f.me.key, true, f.t0), Strike::Unknown);
        let stranger = KeyPair::from_seed([9; 32]).public();
        assert_eq!(f.table.strike(&stranger, false, f.t0), Strike::Unknown);
    }

    #[test]
    fn a_banned_validator_is_neither_dialled_nor_accepted_until_the_ban_ends() {
        let mut f = fixture();
        f.table.on_connected(f.a.peer_id, f.t0);
        f.table.strike(&f.a.key, true, f.t0);
        assert_eq!(
            f.table.on_closed(f.a.peer_id, 0, f.t0),
            Closed::Lost { validator: true }
        );
        let during = f.t0 + BAN - ms(1);
        assert!(!due(&mut f.table, during).contains(&f.a.peer_id));
        assert_eq!(f.table.on_connected(f.a.peer_id, during), None);
        assert_eq!(f.table.connected_count(), 0);

        let after = f.t0 + BAN;
        assert!(due(&mut f.table, after).contains(&f.a.peer_id));
        assert_eq!(f.table.on_connected(f.a.peer_id, after), Some(true));
    }

    #[test]
    fn a_peer_id_names_its_ed25519_key() {
        let key = KeyPair::from_seed([7; 32]);
        let mut secret = *key.secret_bytes();
        let id = identity::Keypair::ed25519_from_bytes(&mut secret).unwrap();
        assert_eq!(peer_key(&id.public().to_peer_id()), Some(key.public()));
        assert_eq!(peer_key(&PeerId::random()), None, "not an ed25519 key");
    }

    #[test]
    fn non_validators_are_admitted_up_to_the_limit_and_forgotten_when_gone() {
        let mut f = fixture();
        // This node itself is never a peer; neither is an id without an ed25519 key.
        assert_eq!(f.table.on_connected(f.me.peer_id, f.t0), None);
        assert_eq!(f.table.on_connected(PeerId::random(), f.t0), None);
        let full = identity::Keypair::generate_ed25519().public().to_peer_id();
        let other = identity::Keypair::generate_ed25519().public().to_peer_id();
        let full_key = peer_key(&full).unwrap();
        assert_eq!(f.table.on_connected(full, f.t0), Some(true));
        assert_eq!(f.table.key(&full), Some((full_key, false)));
        assert_eq!(f.table.key(&f.a.peer_id), Some((f.a.key, true)));
        // The limit is one: a second non-validator is refused, and left unknown.
        assert_eq!(f.table.on_connected(other, f.t0), None);
        assert_eq!(f.table.key(&other), None);
        assert_eq!(f.table.non_validator_count(), 1);
        assert_eq!(f.table.connected_count(), 0, "no validator is connected");
        // Broadcasts to validators skip it; those to everyone reach it. It is never dialled.
        f.table.on_connected(f.a.peer_id, f.t0);
        assert_eq!(
            sorted(f.table.connected(Audience::Validators).collect()),
            vec![f.a.peer_id]
        );
        assert_eq!(
            sorted(f.table.connected(Audience::Everyone).collect()),
            sorted(vec![f.a.peer_id, full])
        );
        assert!(!due(&mut f.table, f.t0 + MAX).contains(&full));
        assert!(f.table.lost().is_empty());
        // Gone, it is forgotten, and its place is free again.
        assert_eq!(f.table.on_closed(full, 0, f.t0), Closed::Gone(full_key));
        assert_eq!(f.table.key(&full), None);
        assert_eq!(f.table.strike(&full_key, false, f.t0), Strike::Unknown);
        assert!(f.table.lost().is_empty(), "only validators are lost");
        assert_eq!(f.table.on_connected(other, f.t0), Some(true));
    }

    #[test]
    fn a_banned_non_validator_stays_refused_after_it_is_forgotten() {
        let mut f = fixture();
        let full = identity::Keypair::generate_ed25519().public().to_peer_id();
        let key = peer_key(&full).unwrap();
        f.table.on_connected(full, f.t0);
        assert!(matches!(
            f.table.strike(&key, true, f.t0),
            Strike::Banned { .. }
        ));
        assert_eq!(f.table.on_closed(full, 0, f.t0), Closed::Gone(key));
        assert_eq!(f.table.on_connected(full, f.t0 + BAN - ms(1)), None);
        assert_eq!(f.table.on_connected(full, f.t0 + BAN), Some(true));
    }

    #[test]
    fn configured_peers_are_dialled_and_not_counted_against_the_limit() {
        let mut f = fixture();
        let peer = identity::Keypair::generate_ed25519().public().to_peer_id();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/9100".parse().unwrap();
        let validators = [f.me.clone(), f.a.clone(), f.b.clone()];
        f.table = PeerTable::new(
            &validators,
            &[(peer, vec![addr.clone()]), (f.a.peer_id, vec![addr])],
            f.me.peer_id,
            f.table.policy,
            0,
            f.t0,
        );
        assert_eq!(
            due(&mut f.table, f.t0),
            sorted(vec![f.a.peer_id, f.b.peer_id, peer])
        );
        assert_eq!(
            f.table.key(&f.a.peer_id),
            Some((f.a.key, true)),
            "still a validator"
        );
        assert_eq!(f.table.on_connected(peer, f.t0), Some(true));
        assert_eq!(
            f.table.on_closed(peer, 0, f.t0),
            Closed::Lost { validator: false }
        );
        assert!(f.table.key(&peer).is_some(), "kept, to be redialled");
        let stranger = identity::Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(f.table.on_connected(stranger, f.t0), None, "limit 0");
    }
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    /// A running network task and its ends.
    struct Node {
        key: PublicKey,
        commands: mpsc::Sender<NetCommand>,
        events: mpsc::Receiver<NetEvent>,
        stats: Arc<NetStats>,
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A network task's config for test validators: quick redials and pings.
    fn test_config(id: &identity::Keypair, port: u16, validators: Vec<PeerInfo>) -> NetworkConfig {
        NetworkConfig {
            keypair: id.clone(),
            listen: format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
            validators,
            peers: Vec::new(),
            max_non_validator_peers: 0,
            genesis_hash: Digest::of(b"network test"),
            max_message_bytes: 1024,
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(200),
            max_strikes: 3,
            ban: Duration::from_secs(60),
            strike_decay: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_millis(200),
            ping_timeout: Duration::from_millis(500),
            dial_timeout: Duration::from_secs(1),
            max_concurrent_streams: 16,
        }
    }

    fn spawn(key: PublicKey, cfg: NetworkConfig) -> Node {
        let (commands, command_rx) = mpsc::channel(16);
        let (event_tx, events) = mpsc::channel(16);
        let stats = Arc::new(NetStats::default());
        tokio::spawn(run(cfg, command_rx, event_tx, stats.clone()));
        Node {
            key,
            commands,
            events,
            stats,
        }
    }

    /// Two validators that know each other only by `/dns4/localhost/tcp/<port>`.
    fn start_two() -> [Node; 2] {
        let ids = [0, 1].map(|_| identity::Keypair::generate_ed25519());
        let keys = [1u8, 2].map(|seed| KeyPair::from_seed([seed; 32]).public());
        let ports = [free_port(), free_port()];
        let validators: Vec<PeerInfo> = (0..2)
            .map(|i| PeerInfo {
                key: keys[i],
                peer_id: ids[i].public().to_peer_id(),
                addresses: vec![format!("/dns4/localhost/tcp/{}", ports[i]).parse().unwrap()],
            })
            .collect();
        [0, 1].map(|i| spawn(keys[i], test_config(&ids[i], ports[i], validators.clone())))
    }

    /// A loopback TCP proxy to `target` that forwards both ways until `stalled` is set, then
    /// holds every byte (sockets stay open, nothing gets through: a partition as TCP sees it).
    async fn stalling_proxy(target: u16, stalled: Arc<std::sync::atomic::AtomicBool>) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                for (mut r, mut w) in [(ri, wo), (ro, wi)] {
                    let stalled = stalled.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = r.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            while stalled.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        port
    }

    /// Waits up to 20 s for `done`.
    async fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn validators_dial_dns_names_and_a_ban_is_counted() {
        let [mut a, b] = start_two();
        let connected = |n: &Node| n.stats.connected_validators.load(Ordering::Relaxed) == 1;
        wait_for("the connection", || connected(&a) && connected(&b)).await;

        let bytes = Arc::new(b"hello".to_vec());
        b.commands
            .send(NetCommand::Send { to: a.key, bytes })
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(20), a.events.recv()).await {
            Ok(Some(NetEvent::Message {
                from,
                validator,
                bytes,
            })) => {
                assert_eq!((from, bytes.as_slice()), (b.key, &b"hello"[..]));
                assert!(validator);
            }
            other => panic!("no message: {other:?}"),
        }

        let penalty = NetCommand::Penalize {
            peer: b.key,
            severe: true,
        };
        a.commands.send(penalty).await.unwrap();
        let s = a.stats.clone();
        wait_for("the ban", || s.bans.get() == 1 && s.disconnects.get() == 1).await;
        assert_eq!(s.strikes.get(), 1);
        // `b` redials at once and is refused while banned.
        wait_for("a refused redial", || s.refused_connections.get() >= 1).await;
        assert_eq!(s.connected_validators.load(Ordering::Relaxed), 0);
    }

    /// A connection that stops carrying anything (a partition drops packets and closes
    /// nothing) is found dead by its unanswered ping and closed, so its validator is lost and
    /// redialled; once the path carries data again the validators are connected again. Only
    /// `a` can dial (`b` knows no address of `a` that answers), through the proxy.
    #[tokio::test]
    async fn a_connection_that_carries_nothing_is_closed_and_redialled() {
        let ids = [0, 1].map(|_| identity::Keypair::generate_ed25519());
        let keys = [1u8, 2].map(|seed| KeyPair::from_seed([seed; 32]).public());
        let (port_a, port_b, nowhere) = (free_port(), free_port(), free_port());
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let proxy = stalling_proxy(port_b, stalled.clone()).await;
        let info = |i: usize, port: u16| PeerInfo {
            key: keys[i],
            peer_id: ids[i].public().to_peer_id(),
            addresses: vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
        };
        let a = spawn(
            keys[0],
            test_config(&ids[0], port_a, vec![info(0, port_a), info(1, proxy)]),
        );
        let _b = spawn(
            keys[1],
            test_config(&ids[1], port_b, vec![info(0, nowhere), info(1, port_b)]),
        );
        let s = a.stats.clone();
        let connected = || s.connected_validators.load(Ordering::Relaxed) == 1;
        wait_for("the connection through the proxy", connected).await;
        assert_eq!(s.dead_connections.get(), 0, "a live connection was closed");

        let t = Instant::now();
        stalled.store(true, Ordering::Relaxed);
        wait_for("the dead connection to be closed", || {
            s.dead_connections.get() == 1 && s.lost_validators() == vec![keys[1]]
        })
        .await;
        // Found within a ping interval and timeout (700 ms) and the tick that checks them.
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "found dead after {:?}",
            t.elapsed()
        );
        stalled.store(false, Ordering::Relaxed);
        wait_for("the redial", connected).await;
        assert!(s.lost_validators().is_empty());
    }

    /// A frame is read whole; one that ends before its claimed length is an error, however
    /// large the claim, and costs only the bytes that came.
    #[tokio::test]
    async fn frames_are_read_whole_and_a_short_one_is_refused() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        let mut reader = futures::io::Cursor::new(wire.clone());
        assert_eq!(read_frame(&mut reader, 1 << 20).await.unwrap(), body);

        let mut short = Vec::new();
        short.extend_from_slice(&(16u32 << 20).to_be_bytes());
        short.extend_from_slice(b"a few bytes");
        let mut reader = futures::io::Cursor::new(short);
        let err = read_frame(&mut reader, 16 << 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("ended after 11"), "{err}");

        let mut reader = futures::io::Cursor::new(wire);
        let err = read_frame(&mut reader, 1_000).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
