//! Block retrieval: asking peers for missing ancestors, serving and taking in their answers.

use hotledger_crypto::{Digest, PublicKey};

use super::{Action, Consensus};
use crate::block_tree::Inserted;
use crate::error::{ConsensusError, Result};
use crate::types::{BlockRequest, BlockResponse, Message};

impl Consensus {
    // ---- block retrieval ---------------------------------------------------------------------

    /// How long a block request stays outstanding before it may be retried.
    fn request_expiry_ms(&self) -> u64 {
        self.params.base_timeout_ms.saturating_mul(4)
    }

    pub(super) fn request_block(&mut self, peer: PublicKey, id: Digest, out: &mut Vec<Action>) {
        if Some(peer) == self.me {
            return;
        }
        let expiry = self.request_expiry_ms();
        let now = self.now_ms;
        self.requested
            .retain(|_, asked| now.saturating_sub(*asked) < expiry);
        if self.requested.contains_key(&id) || self.requested.len() >= self.limits.max_orphan_blocks
        {
            return;
        }
        self.requested.insert(id, now);
        out.push(Action::Send {
            to: peer,
            message: Message::BlockRequest(BlockRequest {
                id,
                count: self.limits.max_blocks_per_request,
            }),
        });
    }

    pub(super) fn on_block_request(
        &mut self,
        from: PublicKey,
        r: BlockRequest,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        if r.count == 0 || r.count > self.limits.max_blocks_per_request {
            return Err(ConsensusError::RequestTooLarge {
                got: r.count,
                max: self.limits.max_blocks_per_request,
            });
        }
        out.push(Action::ServeBlocks {
            to: from,
            id: r.id,
            count: r.count,
        });
        Ok(())
    }

    pub(super) fn on_block_response(
        &mut self,
        from: PublicKey,
        r: BlockResponse,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        let max = self.limits.max_blocks_per_request as usize;
        let first = match r.blocks.first() {
            Some(first) if r.blocks.len() <= max => first.id,
            _ => {
                return Err(ConsensusError::BlockResponseSize {
                    got: r.blocks.len(),
                    max,
                })
            }
        };
        if !self.requested.contains_key(&first) {
            return Err(ConsensusError::UnrequestedBlocks { first });
        }
        for pair in r.blocks.windows(2) {
            if pair[0].parent().id != pair[1].id {
                return Err(ConsensusError::BlocksDoNotChain);
            }
        }
        // Verify everything before inserting anything.
        for block in &r.blocks {
            self.verifier()
                .verify_block(block, self.params.max_payload_bytes)?;
            self.verify_qc_once(&block.qc)?;
        }
        self.requested.remove(&r.blocks[0].id);
        let mut oldest_missing = None;
        for block in r.blocks.into_iter().rev() {
            let qc = block.qc.clone();
            let Ok(inserted) = self.tree.insert(block) else {
                break; // buffers full: keep what is in, the rest can be fetched again
            };
            match inserted {
                Inserted::Added(ids) => {
                    self.store_uncommitted(&ids, out);
                    self.process_qc(&qc, None, out);
                    self.after_insert(&ids, out);
                }
                Inserted::Orphan { missing } => {
                    oldest_missing.get_or_insert(missing);
                    self.process_qc(&qc, None, out);
                }
                Inserted::Known | Inserted::BelowRoot => {}
            }
        }
        if let Some(missing) = oldest_missing {
            if !self.tree.contains(&missing) {
                self.request_block(from, missing, out);
            }
        }
        self.try_commit(out);
        Ok(())
    }
}
