//! The checker run after every chaos run, over what the validators answer and what they wrote:
//!
//! - agreement: the same block id and state root at every height on every live validator;
//! - every acknowledged transfer committed, and every transfer in exactly one committed block;
//! - nonces: each account's committed transfers carry nonces 0, 1, … with no gap or repeat,
//!   and its committed nonce is their count; total supply of the funded accounts unchanged;
//! - no honest validator signed two conflicting votes, timeouts or proposals (their
//!   `signed.jsonl`, see `hotledger_node::sign_log`);
//! - no panic in any validator's log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hotledger_crypto::{Digest, PublicKey};
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_node::sign_log;

use super::load::Ledger;
use crate::cluster::Cluster;

/// One broken claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    Diverged {
        height: u64,
        validator: usize,
    },
    Lost {
        hash: Digest,
        acked_by: usize,
    },
    Duplicated {
        hash: Digest,
        heights: Vec<u64>,
    },
    Nonces {
        account: PublicKey,
        detail: String,
    },
    Supply {
        before: u64,
        after: u64,
    },
    DoubleSigned {
        validator: usize,
        first: String,
        second: String,
    },
    Panicked {
        validator: usize,
        line: String,
    },
    Stuck {
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Diverged { height, validator } => {
                write!(
                    f,
                    "validator {validator} holds another block or root at height {height}"
                )
            }
            Violation::Lost { hash, acked_by } => write!(
                f,
                "transfer {hash} acknowledged by validator {acked_by} never committed"
            ),
            Violation::Duplicated { hash, heights } => {
                write!(f, "transfer {hash} committed at heights {heights:?}")
            }
            Violation::Nonces { account, detail } => {
                write!(f, "account {}: {detail}", account.short())
            }
            Violation::Supply { before, after } => {
                write!(f, "total supply changed from {before} to {after}")
            }
            Violation::DoubleSigned {
                validator,
                first,
                second,
            } => write!(f, "validator {validator} signed {first} and {second}"),
            Violation::Panicked { validator, line } => {
                write!(f, "validator {validator} panicked: {line}")
            }
            Violation::Stuck { detail } => f.write_str(detail),
        }
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub acknowledged: usize,
    /// Transfers of the load found in committed blocks.
    pub committed: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub divergences: usize,
    pub conflicting_signatures: usize,
    /// Validators whose damaged disk made them refuse to serve what they hold (a storage error
    /// on a read), with the error: left out of the checks after it.
    pub unreadable: Vec<(usize, String)>,
    pub violations: Vec<Violation>,
}

/// The funded accounts' total balance on validator `i`, read at one height (retried while a
/// commit lands between two reads).
pub async fn supply(c: &Cluster, i: usize) -> Result<u64> {
    let client = c.client(i)?;
    for _ in 0..20 {
        let mut total = 0u64;
        let mut at = BTreeSet::new();
        for key in &c.accounts {
            let account = client.get_account(key.public()).await?;
            at.insert(account.as_ref().map(|a| a.height));
            total = total
                .checked_add(account.map_or(0, |a| a.balance))
                .context("supply overflows")?;
        }
        if at.len() == 1 {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("validator {i}'s accounts never answered at one height")
}

/// Waits (up to `settle`) for every acknowledged transfer to commit and the live validators to
/// reach one height, then checks everything.
pub async fn check(
    c: &Cluster,
    live: &[usize],
    honest: &[usize],
    damaged: &BTreeSet<usize>,
    ledger: &Ledger,
    supply_before: u64,
    settle: Duration,
) -> Result<Report> {
    let mut report = Report {
        acknowledged: ledger.acked().count(),
        ..Report::default()
    };
    // The reference is a validator whose disk was left alone, if one is running.
    let Some(&reference) = live.iter().find(|i| !damaged.contains(i)).or(live.first()) else {
        report.violations.push(Violation::Stuck {
            detail: "no validator is running".into(),
        });
        return Ok(report);
    };

    // Settle: the acknowledged transfers committed on the reference, the others caught up.
    let deadline = Instant::now() + settle;
    let mut waiting: Vec<Digest> = ledger.acked().map(|(h, _)| *h).collect();
    let rc = c.client(reference)?;
    while !waiting.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for h in waiting {
            match rc.get_transaction(h).await {
                Ok(s) if s.height.is_some() => {}
                _ => still.push(h),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let target = rc.status().await?.height;
    let mut heights = BTreeMap::new();
    loop {
        heights.clear();
        for &i in live {
            let h = match c.client(i)?.status().await {
                Ok(s) => s.height,
                Err(_) => 0,
            };
            heights.insert(i, h);
        }
        if heights.values().all(|&h| h >= target) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (&i, &h) in &heights {
        if h < target {
            report.violations.push(Violation::Stuck {
                detail: format!(
                    "validator {i} at height {h} did not reach {target} within {settle:?}"
                ),
            });
        }
    }
    let common = heights.values().copied().min().unwrap_or(0);
    // The accounts as the reference holds them, and the height each answer is at.
    let rc = c.client(reference)?;
    let mut views = Vec::with_capacity(c.accounts.len());
    for key in &c.accounts {
        views.push(rc.get_account(key.public()).await?);
    }
    let scan_to = views
        .iter()
        .flatten()
        .map(|a| a.height)
        .max()
        .unwrap_or(0)
        .max(common);

    // Agreement up to the common height, and where each transfer is (on the reference).
    let mut found: HashMap<Digest, Vec<u64>> = HashMap::new();
    let clients: Vec<_> = live
        .iter()
        .map(|&i| c.client(i).map(|cl| (i, cl)))
        .collect::<Result<_>>()?;
    let mut skip: BTreeSet<usize> = BTreeSet::new();
    for h in 1..=scan_to {
        let mut first: Option<(Digest, Digest)> = None;
        for (i, client) in &clients {
            if (h > common && *i != reference) || skip.contains(i) {
                continue;
            }
            let answer = match client.get_block(Some(h)).await {
                Ok(a) => a,
                Err(e) if damaged.contains(i) => {
                    report.unreadable.push((*i, format!("height {h}: {e}")));
                    skip.insert(*i);
                    continue;
                }
                Err(e) => {
                    report.violations.push(Violation::Stuck {
                        detail: format!("validator {i} did not answer block {h}: {e}"),
                    });
                    skip.insert(*i);
                    continue;
                }
            };
            let Some(b) = answer else {
                report.violations.push(Violation::Stuck {
                    detail: format!("validator {i} has no block at height {h}"),
                });
                continue;
            };
            match first {
                None => {
                    first = Some((b.id, b.state_root));
                    for tx in &b.txs {
                        found.entry(*tx).or_default().push(h);
                    }
                }
                Some(f) if f != (b.id, b.state_root) => {
                    report.divergences += 1;
                    report.violations.push(Violation::Diverged {
                        height: h,
                        validator: *i,
                    });
                }
                Some(_) => {}
            }
        }
    }

    // Exactly once, and nothing acknowledged lost.
    let mut per_account: HashMap<PublicKey, Vec<(u64, u64)>> = HashMap::new();
    for (hash, at) in &found {
        if at.len() > 1 {
            report.duplicated += 1;
            report.violations.push(Violation::Duplicated {
                hash: *hash,
                heights: at.clone(),
            });
        }
        if let Some(sent) = ledger.sent.get(hash) {
            report.committed += 1;
            per_account
                .entry(sent.from)
                .or_default()
                .push((sent.nonce, at[0]));
        }
    }
    for (hash, sent) in ledger.acked() {
        if !found.contains_key(hash) {
            report.lost += 1;
            report.violations.push(Violation::Lost {
                hash: *hash,
                acked_by: sent.acked_by.unwrap_or(0),
            });
        }
    }

    // Nonces: each account's committed transfers up to the height of its view.
    for (key, view) in c.accounts.iter().zip(&views) {
        let at = view.as_ref().map_or(0, |a| a.height);
        let mut nonces: Vec<u64> = per_account
            .remove(&key.public())
            .unwrap_or_default()
            .into_iter()
            .filter(|&(_, h)| h <= at)
            .map(|(n, _)| n)
            .collect();
        nonces.sort_unstable();
        let expected: Vec<u64> = (0..nonces.len() as u64).collect();
        if nonces != expected {
            report.violations.push(Violation::Nonces {
                account: key.public(),
                detail: format!("committed nonces {nonces:?} are not 0..{}", nonces.len()),
            });
        }
        let committed_nonce = view.as_ref().map_or(0, |a| a.nonce);
        if committed_nonce != nonces.len() as u64 {
            report.violations.push(Violation::Nonces {
                account: key.public(),
                detail: format!(
                    "account nonce {committed_nonce} at height {at} but {} of its transfers \
                     committed by then",
                    nonces.len()
                ),
            });
        }
    }
    let after = supply(c, reference).await?;
    if after != supply_before {
        report.violations.push(Violation::Supply {
            before: supply_before,
            after,
        });
    }

    // Signatures and panics.
    for &i in honest {
        let path = c.home(i).join("safety").join(sign_log::FILE_NAME);
        let (entries, _torn) =
            sign_log::read(&path).with_context(|| format!("validator {i}'s {}", path.display()))?;
        for (first, second) in sign_log::conflicts(&entries) {
            report.conflicting_signatures += 1;
            report.violations.push(Violation::DoubleSigned {
                validator: i,
                first: format!("{first:?}"),
                second: format!("{second:?}"),
            });
        }
    }
    for i in 0..c.len() {
        let log = std::fs::read_to_string(c.log_path(i)).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
            report.violations.push(Violation::Panicked {
                validator: i,
                line: line.chars().take(300).collect(),
            });
        }
    }
    Ok(report)
}
