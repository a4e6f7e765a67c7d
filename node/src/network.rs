//! Peer-to-peer transport: libp2p over TCP with Noise and Yamux.
//!
//! * Peers' addresses may name their host by IP address or by DNS name (`/dns/..`, `/dns4/..`,
//!   `/dns6/..`), resolved when dialled with the system's resolver configuration
//!   (`/etc/resolv.conf` on Unix).
//! * Only validators listed in genesis may stay connected: a connection from any other peer id is
//!   closed at once. A validator's libp2p identity is the `peer_id` of its genesis entry.
//! * The protocol name embeds the genesis hash (`/hotledger/<hash prefix>/1`), so nodes of
//!   another chain cannot even negotiate a stream with us.
//! * Every message is one request on a request-response stream, framed with a `u32` length and
//!   refused beyond `max_message_bytes` before anything is allocated. The empty response is the
//!   acknowledgement.
//! * Lost validators are redialled with exponential backoff. A peer the node reports for invalid
//!   data gets strikes; at `max_peer_strikes` (or at once for undecodable bytes) it is
//!   disconnected and banned for `ban`.
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
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::error::NodeError;

/// How often lost validators are checked for a redial that is due.
const DIAL_TICK: Duration = Duration::from_millis(200);

/// A validator as the network sees it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub key: PublicKey,
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub keypair: identity::Keypair,
    pub listen: Multiaddr,
    /// All validators, including this node (skipped when dialling).
    pub validators: Vec<PeerInfo>,
    pub genesis_hash: Digest,
    pub max_message_bytes: usize,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub max_strikes: u32,
    /// How long a peer disconnected for misbehaviour is refused.
    pub ban: Duration,
    /// How long a request waits for its acknowledgement.
    pub request_timeout: Duration,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
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
    },
    /// The peer sent invalid data; `severe` disconnects at once.
    Penalize {
        peer: PublicKey,
        severe: bool,
    },
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetEvent {
    Message { from: PublicKey, bytes: Vec<u8> },
}

/// Counters shared with the consensus loop and the metrics endpoint
/// ([`crate::metrics::Metrics::register_network`] exports each counter).
#[derive(Debug, Default)]
pub struct NetStats {
    /// Validators with at least one connection.
    pub connected_validators: AtomicUsize,
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
    /// Connections closed at once: the peer is not a validator, or is banned.
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
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

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
}

/// The protocol name for a chain: peers of another genesis cannot negotiate it.
pub fn protocol_name(genesis_hash: &Digest) -> String {
    format!("/hotledger/{}/1", &genesis_hash.to_hex()[..16])
}

struct PeerState {
    info: PeerInfo,
    connections: usize,
    next_dial: Instant,
    backoff: Duration,
    strikes: u32,
    banned_until: Option<Instant>,
    /// Connected at least once since start.
    was_connected: bool,
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
        })
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
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
            _ = tick.tick() => net.dial_due(),
            event = net.swarm.select_next_some() => net.on_swarm_event(event),
        }
    }
}

/// The swarm and what this node knows of each validator.
struct Net {
    swarm: Swarm<Behaviour>,
    peers: HashMap<PeerId, PeerState>,
    by_key: HashMap<PublicKey, PeerId>,
    events: mpsc::Sender<NetEvent>,
    stats: Arc<NetStats>,
    reconnect_initial: Duration,
    reconnect_max: Duration,
    max_strikes: u32,
    ban: Duration,
}

impl Net {
    /// Knows every validator of `cfg` but this node, each due for a dial now.
    fn new(
        mut swarm: Swarm<Behaviour>,
        cfg: &NetworkConfig,
        events: mpsc::Sender<NetEvent>,
        stats: Arc<NetStats>,
    ) -> Net {
        let me = *swarm.local_peer_id();
        let mut peers = HashMap::new();
        let mut by_key = HashMap::new();
        for info in cfg.validators.iter().filter(|v| v.peer_id != me) {
            for addr in &info.addresses {
                swarm.add_peer_address(info.peer_id, addr.clone());
            }
            by_key.insert(info.key, info.peer_id);
            peers.insert(
                info.peer_id,
                PeerState {
                    info: info.clone(),
                    connections: 0,
                    next_dial: Instant::now(),
                    backoff: cfg.reconnect_initial,
                    strikes: 0,
                    banned_until: None,
                    was_connected: false,
                },
            );
        }
        Net {
            swarm,
            peers,
            by_key,
            events,
            stats,
            reconnect_initial: cfg.reconnect_initial,
            reconnect_max: cfg.reconnect_max,
            max_strikes: cfg.max_strikes,
            ban: cfg.ban,
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Send { to, bytes } => {
                if let Some(peer) = self.by_key.get(&to) {
                    self.swarm.behaviour_mut().rr.send_request(peer, bytes);
                }
            }
            NetCommand::Broadcast { bytes } => {
                for (peer, st) in &self.peers {
                    if st.connections > 0 {
                        self.swarm
                            .behaviour_mut()
                            .rr
                            .send_request(peer, bytes.clone());
                    }
                }
            }
            NetCommand::Penalize { peer, severe } => self.penalize(peer, severe),
        }
    }

    /// A strike against `peer` (all of them if `severe`); at `max_strikes` it is disconnected
    /// and banned.
    fn penalize(&mut self, peer: PublicKey, severe: bool) {
        let Some(pid) = self.by_key.get(&peer).copied() else {
            return;
        };
        let Some(st) = self.peers.get_mut(&pid) else {
            return;
        };
        self.stats.strikes.inc();
        st.strikes = st
            .strikes
            .saturating_add(if severe { self.max_strikes } else { 1 });
        if st.strikes >= self.max_strikes {
            tracing::warn!(peer = %pid, strikes = st.strikes, "disconnecting misbehaving peer");
            st.banned_until = Instant::now().checked_add(self.ban);
            st.strikes = 0;
            self.stats.bans.inc();
            let _ = self.swarm.disconnect_peer_id(pid);
        }
    }

    /// Dials every validator without a connection whose backoff has passed and that is not
    /// banned.
    fn dial_due(&mut self) {
        let now = Instant::now();
        for (pid, st) in self.peers.iter_mut() {
            let banned = st.banned_until.is_some_and(|t| t > now);
            if st.connections == 0 && !banned && now >= st.next_dial {
                tracing::debug!(peer = %pid, "dialling validator");
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(*pid)
                    .addresses(st.info.addresses.clone())
                    .build();
                // A dial still under way (slower than the backoff) is not a failure.
                match self.swarm.dial(opts) {
                    Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                    Err(error) => {
                        self.stats.dial_failures.inc();
                        tracing::debug!(peer = %pid, %error, "cannot dial validator");
                    }
                }
                st.next_dial = now + st.backoff;
                st.backoff = (st.backoff * 2).min(self.reconnect_max);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.on_connected(peer_id),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => self.on_closed(peer_id, num_established),
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
            _ => {}
        }
    }

    /// Keeps a connection from an allowed, unbanned validator; closes any other.
    fn on_connected(&mut self, peer_id: PeerId) {
        let now = Instant::now();
        match self.peers.get_mut(&peer_id) {
            Some(st) if st.banned_until.is_none_or(|t| t <= now) => {
                st.connections += 1;
                st.was_connected = true;
                st.backoff = self.reconnect_initial;
                if st.connections == 1 {
                    tracing::info!(peer = %peer_id, key = %st.info.key.short(), "validator connected");
                }
            }
            _ => {
                tracing::debug!(peer = %peer_id, "refusing peer that is not an allowed validator");
                self.stats.refused_connections.inc();
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
        }
        self.count_connected();
    }

    fn on_closed(&mut self, peer_id: PeerId, num_established: u32) {
        if let Some(st) = self.peers.get_mut(&peer_id) {
            let was_connected = st.connections > 0;
            st.connections = num_established as usize;
            if num_established == 0 && was_connected {
                tracing::info!(peer = %peer_id, "validator disconnected");
                self.stats.disconnects.inc();
                st.next_dial = Instant::now() + st.backoff;
            }
        }
        self.count_connected();
    }

    fn count_connected(&self) {
        self.stats.connected_validators.store(
            self.peers.values().filter(|s| s.connections > 0).count(),
            Ordering::Relaxed,
        );
        let mut lost: Vec<PublicKey> = self
            .peers
            .values()
            .filter(|s| s.was_connected && s.connections == 0)
            .map(|s| s.info.key)
            .collect();
        lost.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        self.stats.set_lost(lost);
    }

    /// Acknowledges each request and hands its bytes to the node, or drops them if the node's
    /// queue is full.
    fn on_request_response(&mut self, ev: request_response::Event<Arc<Vec<u8>>, ()>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => {
                let request_response::Message::Request {
                    request, channel, ..
                } = message
                else {
                    return;
                };
                let _ = self.swarm.behaviour_mut().rr.send_response(channel, ());
                let Some(st) = self.peers.get(&peer) else {
                    return;
                };
                let bytes = Arc::try_unwrap(request).unwrap_or_else(|a| (*a).clone());
                let event = NetEvent::Message {
                    from: st.info.key,
                    bytes,
                };
                if self.events.try_send(event).is_err() {
                    self.stats.dropped_inbound.inc();
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                self.stats.send_failures.inc();
                tracing::trace!(%peer, %error, "send failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.stats.inbound_failures.inc();
                tracing::debug!(%peer, %error, "inbound stream failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
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
        [0, 1].map(|i| {
            let cfg = NetworkConfig {
                keypair: ids[i].clone(),
                listen: format!("/ip4/127.0.0.1/tcp/{}", ports[i]).parse().unwrap(),
                validators: validators.clone(),
                genesis_hash: Digest::of(b"network test"),
                max_message_bytes: 1024,
                reconnect_initial: Duration::from_millis(50),
                reconnect_max: Duration::from_millis(200),
                max_strikes: 3,
                ban: Duration::from_secs(60),
                request_timeout: Duration::from_secs(10),
                idle_connection_timeout: Duration::from_secs(60),
                max_concurrent_streams: 16,
            };
            let (commands, command_rx) = mpsc::channel(16);
            let (event_tx, events) = mpsc::channel(16);
            let stats = Arc::new(NetStats::default());
            tokio::spawn(run(cfg, command_rx, event_tx, stats.clone()));
            Node {
                key: keys[i],
                commands,
                events,
                stats,
            }
        })
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
            Ok(Some(NetEvent::Message { from, bytes })) => {
                assert_eq!((from, bytes.as_slice()), (b.key, &b"hello"[..]));
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
}
