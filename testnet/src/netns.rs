//! Separate network hosts on one machine: one Linux network namespace per validator, each with
//! its own IPv4 address on one bridge, so validators reach each other only across the bridge,
//! as on separate machines. Root only.
//!
//! Hosts get `198.18.<subnet>.<10 + i>/24` (198.18.0.0/15 is reserved for benchmarking network
//! devices, RFC 2544) and the bridge, in this machine's own namespace, `198.18.<subnet>.1`, so
//! a program here reaches every host's JSON-RPC. Traffic goes only to these addresses. Dropping
//! [`Hosts`] deletes the namespaces (which deletes their links) and the bridge.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Why namespaces cannot be made here (not root, or no `ip` command), if they cannot.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs"
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .map(str::to_owned);
    if euid.as_deref() != Some("0") {
        return Some(
            "network namespaces need root (CAP_NET_ADMIN): run this as root, e.g. with sudo".into(),
        );
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some(
            "the `ip` command (Debian package iproute2) is not installed: apt-get install iproute2"
                .into(),
        );
    }
    None
}

/// Why packets cannot be dropped between hosts here (no `nft` command), if they cannot.
pub fn nft_unavailable() -> Option<String> {
    let nft = Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if nft.is_ok_and(|s| s.success()) {
        return None;
    }
    Some(
        "the `nft` command (Debian package nftables) is not installed: apt-get install nftables"
            .into(),
    )
}

/// The nftables table that holds a host's drop rules.
const FAULT_TABLE: &str = "hotledger_faults";

/// Runs `program ARGS`, failing with its error output.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip ARGS`, failing with its error output.
fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

/// Whether an address of `198.18.<subnet>.0/24` is on a link of this namespace.
pub fn subnet_in_use(subnet: u8) -> bool {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .stdin(Stdio::null())
        .output();
    let prefix = format!(" 198.18.{subnet}.");
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&prefix))
}

/// A subnet no link of this machine uses, trying `first`, `first + 1`, ... (wrapping within
/// 1..=250).
pub fn free_subnet(first: u8) -> Option<u8> {
    (0..250u16)
        .map(|k| u8::try_from(1 + (u16::from(first) + k) % 250).unwrap_or(1))
        .find(|&s| !subnet_in_use(s))
}

/// Whether a link of this name exists in this namespace.
fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The hosts of one network: namespaces, their links and the bridge, deleted on drop.
#[derive(Debug)]
pub struct Hosts {
    bridge: String,
    namespaces: Vec<String>,
    /// Host `i`'s address.
    pub addresses: Vec<Ipv4Addr>,
    /// The bridge's address in this machine's namespace.
    pub gateway: Ipv4Addr,
}

impl Hosts {
    /// Makes `n` hosts (1 to 200) named `<tag>-<i>` on the bridge `<tag>br`, in
    /// `198.18.<subnet>.0/24`. `tag` is 1 to 8 letters or digits, so every link name fits the
    /// kernel's 15 bytes. Fails if the bridge already exists (another network of that tag, or
    /// the remains of one that was killed: the message says how to delete them).
    pub fn create(tag: &str, subnet: u8, n: usize) -> Result<Hosts> {
        if let Some(why) = unavailable() {
            bail!("{why}");
        }
        if tag.is_empty() || tag.len() > 8 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("namespace tag {tag:?} must be 1 to 8 letters or digits");
        }
        if n == 0 || n > 200 {
            bail!("{n} hosts: 1 to 200");
        }
        let bridge = format!("{tag}br");
        if link_exists(&bridge) {
            bail!(
                "the bridge {bridge} exists: another network with these hosts runs, or one \
                 was killed; delete its remains with `ip link del {bridge}` and \
                 `ip netns del {tag}-<i>` for each of its hosts"
            );
        }
        let gateway = Ipv4Addr::new(198, 18, subnet, 1);
        if subnet_in_use(subnet) {
            bail!(
                "198.18.{subnet}.0/24 is already on a link of this machine (another network of \
                 hosts runs): pick another subnet"
            );
        }
        let mut hosts = Hosts {
            bridge: bridge.clone(),
            namespaces: Vec::with_capacity(n),
            addresses: Vec::with_capacity(n),
            gateway,
        };
        // From here on, what was made is deleted by Drop if a later step fails.
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let gw = format!("{gateway}/24");
        ip(&["addr", "add", &gw, "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{tag}-{i}");
            ip(&["netns", "add", &ns])?;
            hosts.namespaces.push(ns.clone());
            let octet = u8::try_from(10 + i).context("host index")?;
            let address = Ipv4Addr::new(198, 18, subnet, octet);
            let (outside, inside) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &bridge, "up"])?;
            let cidr = format!("{address}/24");
            ip(&["-n", &ns, "link", "set", &inside, "name", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            hosts.addresses.push(address);
        }
        Ok(hosts)
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Host `i`'s namespace name.
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// The command prefix that runs a program on host `i`: `ip netns exec <namespace>`, which
    /// enters the namespace and then executes the program in its own process (same pid).
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.namespaces[i].clone(),
        ]
    }

    /// Makes host `i` drop, silently, every packet that arrives from the hosts in `from`, and
    /// only those (replacing what it dropped before; an empty `from` drops nothing). Nothing is
    /// closed or refused: TCP connections stay "established" while nothing gets through, as in
    /// a partition of a real network. An nftables input rule in the host's namespace.
    pub fn drop_from(&self, i: usize, from: &[usize]) -> Result<()> {
        let sources: Vec<String> = from
            .iter()
            .map(|&j| self.addresses[j].to_string())
            .collect();
        let mut script = format!("table inet {FAULT_TABLE}\ndelete table inet {FAULT_TABLE}\n");
        if !sources.is_empty() {
            script.push_str(&format!(
                "table inet {FAULT_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
                sources.join(", ")
            ));
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i], "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nft (Debian package nftables)")?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft on host {i} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Splits the hosts into `groups`: each host drops what arrives from every host outside its
    /// group. Hosts in no group are cut off from all others.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        for i in 0..self.len() {
            let group = groups.iter().find(|g| g.contains(&i));
            let others: Vec<usize> = (0..self.len())
                .filter(|&j| j != i && !group.is_some_and(|g| g.contains(&j)))
                .collect();
            self.drop_from(i, &others)?;
        }
        Ok(())
    }

    /// Ends every partition: no host drops anything.
    pub fn heal(&self) -> Result<()> {
        for i in 0..self.len() {
            self.drop_from(i, &[])?;
        }
        Ok(())
    }

    /// The hosts' addresses, comma-separated, for `hotledger testnet --hosts`.
    pub fn hosts_arg(&self) -> String {
        self.addresses
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: {e}");
            }
        }
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("warning: {e}");
        }
    }
}
