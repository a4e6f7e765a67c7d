//! Steady signed transfers between the funded accounts, every acknowledgement recorded.
//!
//! One task per account sends its transfers in nonce order, each to the next validator in turn.
//! An answer of `Ok(hash)` is an acknowledgement: the harness holds the validators to it. A
//! failed submission (no answer, a refusal) is retried, the same signed transfer, on the next
//! validator, so every nonce is signed once; "already in the mempool" or "stale nonce" means a
//! validator holds it or it committed, and the account moves on. Every loop stops at the
//! deadline or when told to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotledger_crypto::{Digest, KeyPair, PublicKey};
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::rpc::HotledgerApiClient;
use jsonrpsee::http_client::HttpClientBuilder;

/// A transfer the load signed.
#[derive(Clone, Debug)]
pub struct Sent {
    pub from: PublicKey,
    pub nonce: u64,
    /// Which validator acknowledged it, if one did.
    pub acked_by: Option<usize>,
}

/// What the load did, shared with its tasks.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every transfer signed, by hash.
    pub sent: HashMap<Digest, Sent>,
    pub submissions: u64,
    pub failures: u64,
}

impl Ledger {
    pub fn acked(&self) -> impl Iterator<Item = (&Digest, &Sent)> {
        self.sent.iter().filter(|(_, s)| s.acked_by.is_some())
    }
}

/// The running load.
#[derive(Debug)]
pub struct Load {
    pub ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts one task per account, each sending a transfer every `interval` through the
    /// validators at `urls`, until [`Load::stop`] or `max_run`.
    pub fn start(
        accounts: &[KeyPair],
        chain_id: &str,
        urls: &[String],
        interval: Duration,
        max_run: Duration,
    ) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let keys: Vec<PublicKey> = accounts.iter().map(KeyPair::public).collect();
        let mut tasks = Vec::new();
        for (k, key) in accounts.iter().enumerate() {
            let to = keys[(k + 1) % keys.len()];
            let task = account_task(
                k,
                key.clone(),
                to,
                chain_id.to_string(),
                urls.to_vec(),
                interval,
                Instant::now() + max_run,
                ledger.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(task));
        }
        Load {
            ledger,
            stop,
            tasks,
        }
    }

    /// Stops every task, waits for them, and returns what they did.
    pub async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        match self.ledger.lock() {
            Ok(mut l) => std::mem::take(&mut *l),
            // A task panicked holding it: what it recorded is still the record.
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn account_task(
    k: usize,
    key: KeyPair,
    to: PublicKey,
    chain_id: String,
    urls: Vec<String>,
    interval: Duration,
    deadline: Instant,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let clients: Vec<_> = urls
        .iter()
        .filter_map(|u| {
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(2))
                .build(u)
                .ok()
        })
        .collect();
    if clients.is_empty() {
        return;
    }
    let mut nonce = 0u64;
    let mut turn = k;
    let mut pending: Option<SignedTransaction> = None;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let tx = match pending.take() {
            Some(tx) => tx,
            None => {
                let tx = Transfer {
                    from: key.public(),
                    to,
                    amount: 1,
                    nonce,
                }
                .sign(&key, &chain_id);
                if let Ok(mut l) = ledger.lock() {
                    l.sent.insert(
                        tx.hash(),
                        Sent {
                            from: key.public(),
                            nonce,
                            acked_by: None,
                        },
                    );
                }
                tx
            }
        };
        let v = turn % clients.len();
        turn += 1;
        let answer = clients[v].submit_transaction(tx.clone()).await;
        {
            let Ok(mut l) = ledger.lock() else {
                return;
            };
            l.submissions += 1;
            match answer {
                Ok(_) => {
                    if let Some(s) = l.sent.get_mut(&tx.hash()) {
                        s.acked_by = Some(v);
                    }
                    nonce += 1;
                }
                Err(e) => {
                    l.failures += 1;
                    let text = e.to_string();
                    if text.contains("already in the mempool") || text.contains("stale nonce") {
                        nonce += 1;
                    } else {
                        pending = Some(tx);
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
