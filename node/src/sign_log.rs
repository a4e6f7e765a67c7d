//! The signed-message log: one JSON line per vote, timeout and proposal this validator signed
//! and sent, appended before the message is handed to the network (`storage.sign_log`, off by
//! default). Fault-injection runs read it to check that no validator signed two conflicting
//! messages in one round; an operator may keep it for audits.
//!
//! Lines (the digest is what the signature covers):
//!
//! ```text
//! {"kind":"vote","round":7,"digest":"<hex of VoteData::digest>"}
//! {"kind":"timeout","round":7,"high_qc_round":5}
//! {"kind":"proposal","round":7,"height":6,"block":"<hex block id>"}
//! ```
//!
//! The same message sent again (to a validator that came back) is logged again: repeats are
//! identical lines, conflicts are two different lines for one kind and round. Appends are not
//! synced: a process crash keeps them (the OS holds the page cache), a power loss may not. A
//! failed append stops the node, as every storage failure does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use hotledger_consensus::Message;
use hotledger_crypto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;

/// The file's name inside the safety folder.
pub const FILE_NAME: &str = "signed.jsonl";

/// One logged message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Signed {
    Vote {
        round: u64,
        digest: String,
    },
    Timeout {
        round: u64,
        high_qc_round: u64,
    },
    Proposal {
        round: u64,
        height: u64,
        block: String,
    },
}

impl Signed {
    /// What `me` signed in `message`: its own vote, timeout (and the vote it carries) or
    /// proposal; nothing for messages others signed or that carry no signature of ours.
    pub fn of(message: &Message, me: &PublicKey) -> Vec<Signed> {
        let vote = |v: &hotledger_consensus::Vote| Signed::Vote {
            round: v.round(),
            digest: v.data.digest().to_hex(),
        };
        match message {
            Message::Vote(v) if &v.author == me => vec![vote(v)],
            Message::Timeout(t) if &t.author == me => {
                let mut out = vec![Signed::Timeout {
                    round: t.round,
                    high_qc_round: t.high_qc.round(),
                }];
                out.extend(t.vote.iter().filter(|v| &v.author == me).map(vote));
                out
            }
            Message::Proposal(p) if &p.block.author == me => vec![Signed::Proposal {
                round: p.block.round,
                height: p.block.height,
                block: p.block.id.to_hex(),
            }],
            _ => Vec::new(),
        }
    }

    /// The kind and round two lines must share to conflict.
    pub fn slot(&self) -> (&'static str, u64) {
        match self {
            Signed::Vote { round, .. } => ("vote", *round),
            Signed::Timeout { round, .. } => ("timeout", *round),
            Signed::Proposal { round, .. } => ("proposal", *round),
        }
    }
}

/// The open log.
#[derive(Debug)]
pub struct SignLog {
    path: PathBuf,
    file: File,
    me: PublicKey,
}

impl SignLog {
    /// Opens (creating) `<dir>/signed.jsonl` for appending what `me` signs.
    pub fn open(dir: &Path, me: PublicKey) -> Result<SignLog, NodeError> {
        let path = dir.join(FILE_NAME);
        let io = |source| NodeError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        // A line torn by a crash is ended, so the next one is not glued to it.
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_at(
                &File::open(&path).map_err(io)?,
                &mut last,
                len - 1,
            )
            .map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(SignLog { path, file, me })
    }

    /// Appends what this validator signed in `message` (nothing if it signed nothing in it).
    pub fn record(&mut self, message: &Message) -> Result<(), NodeError> {
        let entries = Signed::of(message, &self.me);
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for e in &entries {
            // A plain struct of numbers and strings: serialising cannot fail.
            text.push_str(&serde_json::to_string(e).unwrap_or_default());
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| NodeError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads a log: every line that parses, in order, and the count of lines that do not (a torn
/// last line after a crash).
pub fn read(path: &Path) -> std::io::Result<(Vec<Signed>, usize)> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(s) => out.push(s),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

/// Two different lines for one kind and round: a double signature, with the pair.
pub fn conflicts(entries: &[Signed]) -> Vec<(Signed, Signed)> {
    let mut first: std::collections::HashMap<(&'static str, u64), &Signed> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in entries {
        match first.get(&e.slot()) {
            Some(seen) if *seen != e => out.push(((*seen).clone(), e.clone())),
            Some(_) => {}
            None => {
                first.insert(e.slot(), e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_not_conflicts_and_a_second_vote_in_a_round_is() {
        let v = |round, d: &str| Signed::Vote {
            round,
            digest: d.into(),
        };
        let t = |round, q| Signed::Timeout {
            round,
            high_qc_round: q,
        };
        let clean = [v(1, "a"), v(1, "a"), t(1, 0), t(1, 0), v(2, "b"), t(2, 1)];
        assert!(conflicts(&clean).is_empty());
        let bad = [v(1, "a"), v(2, "b"), v(1, "c"), t(3, 1), t(3, 2)];
        let found = conflicts(&bad);
        assert_eq!(found, vec![(v(1, "a"), v(1, "c")), (t(3, 1), t(3, 2))]);
    }

    #[test]
    fn lines_round_trip_and_a_torn_tail_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let key = hotledger_crypto::KeyPair::from_seed([3; 32]);
        let mut log = SignLog::open(dir.path(), key.public()).unwrap();
        drop(
            log.file
                .write_all(b"{\"kind\":\"vote\",\"round\":4,\"digest\":\"ab\"}\n"),
        );
        drop(log.file.write_all(b"{\"kind\":\"timeout\",\"rou"));
        drop(log);
        let mut log = SignLog::open(dir.path(), key.public()).unwrap();
        drop(
            log.file
                .write_all(b"{\"kind\":\"vote\",\"round\":5,\"digest\":\"cd\"}\n"),
        );
        let (entries, bad) = read(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            entries,
            vec![
                Signed::Vote {
                    round: 4,
                    digest: "ab".into()
                },
                Signed::Vote {
                    round: 5,
                    digest: "cd".into()
                }
            ]
        );
        assert_eq!(bad, 1);
        // A message that carries no signature of ours adds nothing.
        log.record(&Message::BlockResponse(
            hotledger_consensus::BlockResponse { blocks: Vec::new() },
        ))
        .unwrap();
        assert_eq!(read(&dir.path().join(FILE_NAME)).unwrap().0.len(), 2);
    }
}
