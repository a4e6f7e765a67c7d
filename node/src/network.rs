//! Peer-to-peer transport: libp2p over TCP with Noise and Yamux.
//!
//! * Only validators listed in genesis may stay connected: a connection from any other peer id is
//!   closed at once. A validator's libp2p identity is the `peer_id` of its genesis entry.
//! * The protocol name embeds the genesis hash (`/hotledger/<hash prefix>/1`), so nodes of
//!   another chain cannot even negotiate a stream with us.
//! * Every message is one request on a request-response stream, framed with a `u32` length and
//!   refused beyond `max_message_bytes` before anything is allocated. The empty response is the
//!   acknowledgement.
//! * Lost validators are redialled with exponential backoff. A peer the node reports for invalid
//!   data gets strikes; at `max_peer_strikes` (or at once for undecodable bytes) it is
//!   disconnected and banned for a while.
//! * Queues between this task and the node are bounded; when the node falls behind, inbound
//!   messages are dropped (consensus retransmits what matters) and counted.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use hotledger_crypto::{Digest, PublicKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use tokio::sync::mpsc;

use crate::error::NodeError;

/// How long a banned peer is refused.
const BAN: Duration = Duration::from_secs(60);

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

/// Counters shared with metrics and RPC.
#[derive(Debug, Default)]
pub struct NetStats {
    pub connected_validators: AtomicUsize,
    pub dropped_inbound: AtomicU64,
    pub send_failures: AtomicU64,
    pub disconnected_for_misbehaviour: AtomicU64,
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
}

/// Runs the swarm until `commands` closes.
pub async fn run(
    cfg: NetworkConfig,
    mut commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
    stats: Arc<NetStats>,
) -> Result<(), NodeError> {
    let protocol = StreamProtocol::try_from_owned(protocol_name(&cfg.genesis_hash))
        .map_err(|e| NodeError::Network(e.to_string()))?;
    let codec = FrameCodec {
        max: cfg.max_message_bytes,
    };
    let rr_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_max_concurrent_streams(1024);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(format!("transport: {e}")))?
        .with_behaviour(|_| Behaviour {
            rr: request_response::Behaviour::with_codec(
                codec,
                [(protocol, ProtocolSupport::Full)],
                rr_config,
            ),
        })
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .listen_on(cfg.listen.clone())
        .map_err(|e| NodeError::Network(format!("cannot listen on {}: {e}", cfg.listen)))?;

    let me = *swarm.local_peer_id();
    let mut peers: HashMap<PeerId, PeerState> = HashMap::new();
    let mut by_key: HashMap<PublicKey, PeerId> = HashMap::new();
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
            },
        );
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));

    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                match cmd {
                    NetCommand::Send { to, bytes } => {
                        if let Some(peer) = by_key.get(&to) {
                            swarm.behaviour_mut().rr.send_request(peer, bytes);
                        }
                    }
                    NetCommand::Broadcast { bytes } => {
                        for (peer, st) in &peers {
                            if st.connections > 0 {
                                swarm.behaviour_mut().rr.send_request(peer, bytes.clone());
                            }
                        }
                    }
                    NetCommand::Penalize { peer, severe } => {
                        let Some(pid) = by_key.get(&peer).copied() else { continue };
                        if let Some(st) = peers.get_mut(&pid) {
                            st.strikes = st.strikes.saturating_add(if severe { cfg.max_strikes } else { 1 });
                            if st.strikes >= cfg.max_strikes {
                                tracing::warn!(peer = %pid, strikes = st.strikes, "disconnecting misbehaving peer");
                                st.banned_until = Some(Instant::now() + BAN);
                                st.strikes = 0;
                                stats.disconnected_for_misbehaviour.fetch_add(1, Ordering::Relaxed);
                                let _ = swarm.disconnect_peer_id(pid);
                            }
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for (pid, st) in peers.iter_mut() {
                    let banned = st.banned_until.is_some_and(|t| t > now);
                    if st.connections == 0 && !banned && now >= st.next_dial {
                        tracing::debug!(peer = %pid, "dialling validator");
                        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(*pid)
                            .addresses(st.info.addresses.clone())
                            .build();
                        let _ = swarm.dial(opts);
                        st.next_dial = now + st.backoff;
                        st.backoff = (st.backoff * 2).min(cfg.reconnect_max);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "p2p listening");
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    let now = Instant::now();
                    match peers.get_mut(&peer_id) {
                        Some(st) if st.banned_until.is_none_or(|t| t <= now) => {
                            st.connections += 1;
                            st.backoff = cfg.reconnect_initial;
                            if st.connections == 1 {
                                tracing::info!(peer = %peer_id, key = %st.info.key.short(), "validator connected");
                            }
                        }
                        _ => {
                            tracing::debug!(peer = %peer_id, "refusing peer that is not an allowed validator");
                            let _ = swarm.disconnect_peer_id(peer_id);
                        }
                    }
                    stats.connected_validators.store(
                        peers.values().filter(|s| s.connections > 0).count(),
                        Ordering::Relaxed,
                    );
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                    if let Some(st) = peers.get_mut(&peer_id) {
                        st.connections = num_established as usize;
                        if num_established == 0 {
                            tracing::info!(peer = %peer_id, "validator disconnected");
                            st.next_dial = Instant::now() + st.backoff;
                        }
                    }
                    stats.connected_validators.store(
                        peers.values().filter(|s| s.connections > 0).count(),
                        Ordering::Relaxed,
                    );
                }
                SwarmEvent::Behaviour(BehaviourEvent::Rr(ev)) => match ev {
                    request_response::Event::Message { peer, message, .. } => {
                        if let request_response::Message::Request { request, channel, .. } = message {
                            let _ = swarm.behaviour_mut().rr.send_response(channel, ());
                            let Some(st) = peers.get(&peer) else { continue };
                            let bytes = Arc::try_unwrap(request).unwrap_or_else(|a| (*a).clone());
                            if events.try_send(NetEvent::Message { from: st.info.key, bytes }).is_err() {
                                stats.dropped_inbound.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    request_response::Event::OutboundFailure { peer, error, .. } => {
                        stats.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(%peer, %error, "send failed");
                    }
                    request_response::Event::InboundFailure { peer, error, .. } => {
                        tracing::debug!(%peer, %error, "inbound stream failed");
                    }
                    request_response::Event::ResponseSent { .. } => {}
                },
                _ => {}
            }
        }
    }
}
