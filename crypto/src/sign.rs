//! Signing domains, the exact signed byte layout, and batch verification.

use crate::ed25519;
use crate::keys::{PublicKey, Signature};
use crate::CryptoError;

/// What a signature is for. Each domain has its own tag, so a signature made
/// for one purpose never verifies for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Domain {
    /// A leader's block proposal.
    Proposal,
    /// A replica's vote on a proposal.
    Vote,
    /// A replica's view-timeout message.
    Timeout,
    /// A client transaction.
    Transaction,
    /// A request for blocks during sync.
    BlockRequest,
    /// The peer handshake.
    Handshake,
}

impl Domain {
    /// Every domain, in declaration order.
    pub const ALL: [Domain; 6] = [
        Domain::Proposal,
        Domain::Vote,
        Domain::Timeout,
        Domain::Transaction,
        Domain::BlockRequest,
        Domain::Handshake,
    ];

    /// The tag mixed into every signature of this domain.
    pub fn tag(&self) -> &'static [u8] {
        match self {
            Domain::Proposal => b"hotledger/v1/proposal",
            Domain::Vote => b"hotledger/v1/vote",
            Domain::Timeout => b"hotledger/v1/timeout",
            Domain::Transaction => b"hotledger/v1/transaction",
            Domain::BlockRequest => b"hotledger/v1/block-request",
            Domain::Handshake => b"hotledger/v1/handshake",
        }
    }
}

/// A `u32` big-endian length prefix. Lengths above `u32::MAX` are saturated; see
/// [`signing_bytes`].
fn len_prefix(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// The exact bytes that get signed (and verified) for `msg`:
///
/// ```text
/// u32_be(len(tag))      || tag        -- Domain::tag(), e.g. "hotledger/v1/vote"
/// u32_be(len(chain_id)) || chain_id   -- UTF-8 bytes
/// msg                                 -- the rest, unprefixed
/// ```
///
/// Because the two variable fields before `msg` are length-prefixed and
/// `msg` runs to the end, distinct `(domain, chain_id, msg)` triples give
/// distinct byte strings. (The one theoretical exception: a length prefix
/// saturates at `u32::MAX`, so chain ids of 4 GiB or more are not separated
/// from each other; such chain ids are invalid everywhere else.) Never
/// panics.
pub fn signing_bytes(domain: Domain, chain_id: &str, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + domain.tag().len() + chain_id.len() + msg.len());
    write_signing_bytes(domain, chain_id, msg, |part| out.extend_from_slice(part));
    out
}

/// [`signing_bytes`] in pieces, so a hash can take them without a copy.
pub(crate) fn write_signing_bytes(
    domain: Domain,
    chain_id: &str,
    msg: &[u8],
    mut write: impl FnMut(&[u8]),
) {
    let tag = domain.tag();
    write(&len_prefix(tag.len()));
    write(tag);
    write(&len_prefix(chain_id.len()));
    write(chain_id.as_bytes());
    write(msg);
}

/// One signature to check in [`verify_batch`].
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The claimed signer.
    pub key: &'a PublicKey,
    /// The domain it was signed under.
    pub domain: Domain,
    /// The message (before [`signing_bytes`] framing).
    pub msg: &'a [u8],
    /// The signature.
    pub sig: &'a Signature,
}

/// Verifies every item under `chain_id`.
///
/// * Empty batch: `Ok(())`.
/// * One item: the single check; failure is `BadSignature { index: 0 }`.
/// * Otherwise one batch check (a random linear combination of the items' equations; see
///   the `ed25519` module). If it passes, nothing more is done. If it fails, every item is checked
///   on its own and the first failure is reported as [`CryptoError::BadSignature`] with its
///   index.
///
/// Single and batch checks use the same (cofactored) equation and the same encoding rules, so a
/// signature gets the same answer alone and in any batch, on every node (up to a 2⁻¹²⁸ chance
/// that a batch with a bad item passes). Public keys are checked for weakness (small order) when
/// a [`PublicKey`] is built, i.e. at registration or decoding, not here.
pub fn verify_batch(chain_id: &str, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    match verify_batch_each(chain_id, items).iter().position(|ok| !ok) {
        None => Ok(()),
        Some(index) => Err(CryptoError::BadSignature { index }),
    }
}

/// One flag per item of `items`: does its signature verify? One batch check as in
/// [`verify_batch`] (of the items whose signature decodes); only if it fails is every item checked
/// on its own, so each `false` names a bad signature and each `true` is a checked one.
pub fn verify_batch_each(chain_id: &str, items: &[BatchItem<'_>]) -> Vec<bool> {
    ed25519::verify_each(chain_id, items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    const CHAIN: &str = "hotledger-test";

    #[test]
    fn tags_are_distinct_and_prefixed() {
        let tags: std::collections::HashSet<_> = Domain::ALL.iter().map(|d| d.tag()).collect();
        assert_eq!(tags.len(), Domain::ALL.len());
        for d in Domain::ALL {
            assert!(d.tag().starts_with(b"hotledger/v1/"));
        }
    }

    #[test]
    fn signing_bytes_layout() {
        let b = signing_bytes(Domain::Vote, "c1", b"MSG");
        let mut want = Vec::new();
        want.extend_from_slice(&17u32.to_be_bytes());
        want.extend_from_slice(b"hotledger/v1/vote");
        want.extend_from_slice(&2u32.to_be_bytes());
        want.extend_from_slice(b"c1");
        want.extend_from_slice(b"MSG");
        assert_eq!(b, want);
        // Moving bytes between chain id and message changes the encoding.
        assert_ne!(
            signing_bytes(Domain::Vote, "ab", b"c"),
            signing_bytes(Domain::Vote, "a", b"bc")
        );
        let long = "x".repeat(70_000);
        assert_eq!(
            signing_bytes(Domain::Vote, &long, b"").len(),
            8 + 17 + 70_000
        );
    }

    #[test]
    fn domain_serde_roundtrip() {
        for d in Domain::ALL {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(serde_json::from_str::<Domain>(&json).unwrap(), d);
        }
    }

    struct Fixture {
        keys: Vec<PublicKey>,
        msgs: Vec<Vec<u8>>,
        sigs: Vec<Signature>,
        domains: Vec<Domain>,
    }

    fn fixture(n: usize) -> Fixture {
        let mut f = Fixture {
            keys: vec![],
            msgs: vec![],
            sigs: vec![],
            domains: vec![],
        };
        for i in 0..n {
            let k = KeyPair::from_seed([i as u8 + 1; 32]);
            let d = Domain::ALL[i % Domain::ALL.len()];
            let m = format!("message {i}").into_bytes();
            f.sigs.push(k.sign(d, CHAIN, &m));
            f.keys.push(k.public());
            f.msgs.push(m);
            f.domains.push(d);
        }
        f
    }

    fn items(f: &Fixture) -> Vec<BatchItem<'_>> {
        (0..f.keys.len())
            .map(|i| BatchItem {
                key: &f.keys[i],
                domain: f.domains[i],
                msg: &f.msgs[i],
                sig: &f.sigs[i],
            })
            .collect()
    }

    #[test]
    fn batch_of_16_ok() {
        let f = fixture(16);
        assert!(verify_batch(CHAIN, &items(&f)).is_ok());
        // ... and the same batch under another chain id fails at index 0.
        assert!(matches!(
            verify_batch("other", &items(&f)),
            Err(CryptoError::BadSignature { index: 0 })
        ));
    }

    #[test]
    fn empty_batch_ok() {
        assert!(verify_batch(CHAIN, &[]).is_ok());
    }

    #[test]
    fn single_item_batch() {
        let mut f = fixture(1);
        assert!(verify_batch(CHAIN, &items(&f)).is_ok());
        f.msgs[0].push(0);
        assert!(matches!(
            verify_batch(CHAIN, &items(&f)),
            Err(CryptoError::BadSignature { index: 0 })
        ));
    }

    #[test]
    fn batch_reports_first_bad_index() {
        let mut f = fixture(16);
        f.msgs[7].push(b'!');
        assert!(matches!(
            verify_batch(CHAIN, &items(&f)),
            Err(CryptoError::BadSignature { index: 7 })
        ));
        // Two bad ones: the first is reported.
        f.sigs[12].0[0] ^= 1;
        f.domains[3] = if f.domains[3] == Domain::Vote {
            Domain::Timeout
        } else {
            Domain::Vote
        };
        assert!(matches!(
            verify_batch(CHAIN, &items(&f)),
            Err(CryptoError::BadSignature { index: 3 })
        ));
    }

    #[test]
    fn each_flag_names_every_bad_item() {
        let mut f = fixture(16);
        assert_eq!(verify_batch_each(CHAIN, &items(&f)), vec![true; 16]);
        f.msgs[2].push(b'!');
        f.sigs[9].0[0] ^= 1;
        f.sigs[15].0[40] ^= 1;
        let flags = verify_batch_each(CHAIN, &items(&f));
        let bad: Vec<usize> = (0..16).filter(|i| !flags[*i]).collect();
        assert_eq!(bad, vec![2, 9, 15]);
    }

    #[test]
    fn batch_detects_swapped_signatures_and_garbage() {
        let mut f = fixture(4);
        f.sigs.swap(1, 2);
        assert!(matches!(
            verify_batch(CHAIN, &items(&f)),
            Err(CryptoError::BadSignature { index: 1 })
        ));
        let mut f = fixture(4);
        f.sigs[2] = Signature([0xff; 64]); // non-canonical s, undecodable R
        assert!(matches!(
            verify_batch(CHAIN, &items(&f)),
            Err(CryptoError::BadSignature { index: 2 })
        ));
    }
}
