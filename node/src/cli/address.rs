//! Where a generated validator is reached and where it listens, shared by `init` and `testnet`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use hotledger_genesis::Host;
use hotledger_node::config::NodeConfig;
use libp2p::multiaddr::{Multiaddr, Protocol};

/// The default ports, one per role (each validator on its own host uses the same ones).
pub const P2P_PORT: u16 = 26656;
pub const RPC_PORT: u16 = 26657;
pub const METRICS_PORT: u16 = 26660;

/// Which address the node's listeners (p2p, JSON-RPC, metrics) bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bind {
    /// Every interface (`0.0.0.0`, or `::` for an IPv6 host): for hosts behind NAT or with
    /// several interfaces
    Any,
    /// Only the host's own address (an IP address, not a DNS name)
    Host,
}

/// The ports and bind mode of generated homes.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// TCP port for peer-to-peer connections
    #[arg(long, default_value_t = P2P_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub p2p_port: u16,
    /// TCP port of the JSON-RPC server
    #[arg(long, default_value_t = RPC_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub rpc_port: u16,
    /// TCP port of the Prometheus metrics endpoint
    #[arg(long, default_value_t = METRICS_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub metrics_port: u16,
    /// Where the listeners bind [default: host for a loopback host, else any]
    #[arg(long, value_enum)]
    pub bind: Option<Bind>,
}

impl PortArgs {
    /// Fails if two roles share a port.
    pub fn check(&self) -> Result<()> {
        let roles = [
            ("--p2p-port", self.p2p_port),
            ("--rpc-port", self.rpc_port),
            ("--metrics-port", self.metrics_port),
        ];
        for (i, (a, pa)) in roles.iter().enumerate() {
            if let Some((b, _)) = roles[i + 1..].iter().find(|(_, pb)| pb == pa) {
                bail!("{a} and {b} are both {pa}: each role needs its own port");
            }
        }
        Ok(())
    }
}

/// A `--hosts`/`--host` value: an IPv4 or IPv6 address or a DNS name.
pub fn parse_host(text: &str) -> Result<Host, String> {
    text.parse::<Host>().map_err(|e| e.to_string())
}

/// The listen addresses of a validator reached at `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub p2p: Multiaddr,
    pub rpc: SocketAddr,
    pub metrics: SocketAddr,
}

impl Listen {
    /// Where a validator reached at `host` listens, on the given ports.
    pub fn new(host: &Host, bind: Option<Bind>, p2p: u16, rpc: u16, metrics: u16) -> Result<Self> {
        let loopback = matches!(host, Host::Ip(ip) if ip.is_loopback());
        let bind = bind.unwrap_or(if loopback { Bind::Host } else { Bind::Any });
        let ip: IpAddr = match (bind, host) {
            (Bind::Host, Host::Ip(ip)) => *ip,
            (Bind::Host, Host::Dns(name)) => {
                bail!("--bind host needs an IP address, and {name} is a DNS name; use --bind any")
            }
            (Bind::Any, Host::Ip(IpAddr::V6(_))) => Ipv6Addr::UNSPECIFIED.into(),
            (Bind::Any, _) => Ipv4Addr::UNSPECIFIED.into(),
        };
        Ok(Listen {
            p2p: Multiaddr::empty()
                .with(Protocol::from(ip))
                .with(Protocol::Tcp(p2p)),
            rpc: SocketAddr::new(ip, rpc),
            metrics: SocketAddr::new(ip, metrics),
        })
    }

    /// Writes the addresses into `config`.
    pub fn apply(&self, config: &mut NodeConfig) {
        config.p2p.listen = self.p2p.to_string();
        config.rpc.listen = self.rpc;
        config.metrics.listen = self.metrics;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Host {
        parse_host(text).unwrap()
    }

    #[test]
    fn loopback_hosts_bind_themselves_others_bind_any() {
        let l = Listen::new(&host("127.0.0.1"), None, 1, 2, 3).unwrap();
        assert_eq!(l.p2p.to_string(), "/ip4/127.0.0.1/tcp/1");
        assert_eq!(l.rpc, "127.0.0.1:2".parse().unwrap());
        let l = Listen::new(&host("198.51.100.4"), None, 1, 2, 3).unwrap();
        assert_eq!(l.p2p.to_string(), "/ip4/0.0.0.0/tcp/1");
        assert_eq!(l.metrics, "0.0.0.0:3".parse().unwrap());
        let l = Listen::new(&host("2001:db8::4"), None, 1, 2, 3).unwrap();
        assert_eq!(l.p2p.to_string(), "/ip6/::/tcp/1");
        assert_eq!(l.rpc, "[::]:2".parse().unwrap());
        let l = Listen::new(&host("v0.example"), None, 1, 2, 3).unwrap();
        assert_eq!(l.p2p.to_string(), "/ip4/0.0.0.0/tcp/1");
    }

    #[test]
    fn bind_host_uses_the_address_and_refuses_dns_names() {
        let l = Listen::new(&host("198.51.100.4"), Some(Bind::Host), 1, 2, 3).unwrap();
        assert_eq!(l.p2p.to_string(), "/ip4/198.51.100.4/tcp/1");
        let err = Listen::new(&host("v0.example"), Some(Bind::Host), 1, 2, 3).unwrap_err();
        assert!(err.to_string().contains("v0.example"), "{err}");
    }

    #[test]
    fn roles_need_their_own_ports() {
        let args = PortArgs {
            p2p_port: 5,
            rpc_port: 6,
            metrics_port: 5,
            bind: None,
        };
        let err = args.check().unwrap_err().to_string();
        assert!(err.contains("--p2p-port and --metrics-port"), "{err}");
    }

    #[test]
    fn generated_listen_addresses_pass_config_validation() {
        let mut config = NodeConfig::default();
        Listen::new(&host("2001:db8::4"), None, 1, 2, 3)
            .unwrap()
            .apply(&mut config);
        assert_eq!(config.validate(), Ok(()));
    }
}
