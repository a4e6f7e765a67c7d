//! The Ed25519 verification equations hotledger uses, single and batched.
//!
//! Both check the *cofactored* equation of RFC 8032 §5.1.7,
//!
//! ```text
//! [8]([s]B − R − [k]A) = 0,   k = SHA-512(R || A || signed bytes) mod ℓ
//! ```
//!
//! and both also refuse a non-canonical `s` (`s ≥ ℓ`) and an `R` that does not decode. Keys of
//! small order are refused when a [`PublicKey`](crate::PublicKey) is built, so `A` always has a
//! prime-order part and a signature that passes needs its discrete logarithm: even one whose `R`
//! has small order (which `verify_strict` refuses) satisfies `s = k·a mod ℓ`, so only the key's
//! owner can make it. Checking `R` for small order would cost three point doublings per
//! signature and buy no security. The batch checks one combination `Σ zᵢ·(sᵢB − Rᵢ − kᵢAᵢ)`,
//! multiplied by the cofactor, with 128-bit coefficients `zᵢ` from a seed the operating system
//! draws for each batch; a batch with an item that fails the single check passes with
//! probability at most 2⁻¹²⁸, independently of how the signer crafted it.
//!
//! Why cofactored: with the cofactorless equation (`verify_strict`, and the batch of
//! `ed25519_dalek::verify_batch`) a signature whose `R` carries a small-order component fails
//! the single check but passes a batch whenever its coefficient happens to cancel that
//! component (one batch in 2, 4 or 8). Validators batch different sets of transactions, so such a
//! transfer would split them: some admit it, or accept a proposal carrying it, and others do not.
//! Under the cofactored equation the small-order parts vanish in both checks, so a signature
//! gets the same answer alone and in every batch, on every node.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::{OsRng, RngCore};
use sha2::{Digest as _, Sha512};

use crate::keys::{PublicKey, Signature};
use crate::sign::{write_signing_bytes, BatchItem, Domain};

/// A signature's parts, decoded and checked for the rules both equations share.
struct Parts {
    r: EdwardsPoint,
    s: Scalar,
    a: EdwardsPoint,
    k: Scalar,
}

fn parts(
    key: &PublicKey,
    domain: Domain,
    chain_id: &str,
    msg: &[u8],
    sig: &Signature,
) -> Option<Parts> {
    let mut r_bytes = [0u8; 32];
    let mut s_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig.0[..32]);
    s_bytes.copy_from_slice(&sig.0[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let a = key.verifying_key().ok()?.to_edwards();
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    write_signing_bytes(domain, chain_id, msg, |part| h.update(part));
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Some(Parts { r, s, a, k })
}

impl Parts {
    /// The single equation, `[8]([s]B − R − [k]A) = 0`.
    fn hold(&self) -> bool {
        // [k](−A) + [s]B − R
        let defect =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.a, &self.s) - self.r;
        defect.mul_by_cofactor().is_identity()
    }
}

/// The single check: is `sig` a valid signature of `msg` by `key` under `domain` and `chain_id`?
pub(crate) fn verify_one(
    key: &PublicKey,
    domain: Domain,
    chain_id: &str,
    msg: &[u8],
    sig: &Signature,
) -> bool {
    parts(key, domain, chain_id, msg, sig).is_some_and(|p| p.hold())
}

/// One flag per item: does its signature pass [`verify_one`]? The items are decoded and hashed
/// once; those that decode are checked in one batch, and only if that fails one by one (reusing
/// the decoded parts), so an undecodable signature costs no single check of the others.
pub(crate) fn verify_each(chain_id: &str, items: &[BatchItem<'_>]) -> Vec<bool> {
    let parts: Vec<Option<Parts>> = items
        .iter()
        .map(|it| parts(it.key, it.domain, chain_id, it.msg, it.sig))
        .collect();
    let decoded: Vec<&Parts> = parts.iter().flatten().collect();
    if decoded.len() > 1 && batch_holds(&decoded) {
        return parts.iter().map(Option::is_some).collect();
    }
    parts
        .iter()
        .map(|p| p.as_ref().is_some_and(Parts::hold))
        .collect()
}

/// 128-bit coefficients from a 32-byte seed: SHA-512(seed || counter) gives four per block.
struct Coefficients {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl Coefficients {
    fn new(seed: [u8; 32]) -> Self {
        Coefficients {
            seed,
            counter: 0,
            block: [0; 64],
            used: 4,
        }
    }

    fn next(&mut self) -> Scalar {
        if self.used == 4 {
            let mut h = Sha512::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.block = h.finalize().into();
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let mut z = [0u8; 16];
        z.copy_from_slice(&self.block[self.used * 16..(self.used + 1) * 16]);
        self.used += 1;
        Scalar::from(u128::from_le_bytes(z))
    }
}

/// The batch check: true only if (with probability 1 − 2⁻¹²⁸) every item satisfies its single
/// equation. False also if the operating system's random source fails; the caller then checks
/// the items one by one.
fn batch_holds(items: &[&Parts]) -> bool {
    let mut seed = [0u8; 32];
    if OsRng.try_fill_bytes(&mut seed).is_err() {
        return false;
    }
    let mut z = Coefficients::new(seed);
    let n = items.len();
    // [−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢkᵢ]Aᵢ
    let mut scalars = Vec::with_capacity(2 * n + 1);
    let mut points = Vec::with_capacity(2 * n + 1);
    let mut key_scalars = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut b = Scalar::ZERO;
    scalars.push(Scalar::ZERO);
    points.push(ED25519_BASEPOINT_POINT);
    for p in items {
        let zi = z.next();
        b += zi * p.s;
        scalars.push(zi);
        points.push(p.r);
        key_scalars.push(zi * p.k);
        keys.push(p.a);
    }
    scalars[0] = -b;
    scalars.extend(key_scalars);
    points.extend(keys);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    const CHAIN: &str = "hotledger-test";

    /// The batch check alone over `items` (false if one does not decode).
    fn verify_many(chain_id: &str, items: &[BatchItem<'_>]) -> bool {
        let parts: Option<Vec<Parts>> = items
            .iter()
            .map(|it| parts(it.key, it.domain, chain_id, it.msg, it.sig))
            .collect();
        parts.is_some_and(|parts| batch_holds(&parts.iter().collect::<Vec<_>>()))
    }

    /// A signature made with the secret scalar directly, whose `R` is `[r]B + t` for the
    /// small-order point `t`: it satisfies the cofactored equation, not the cofactorless one.
    fn forged(seed: u8, r: Scalar, t: EdwardsPoint, msg: &[u8]) -> (PublicKey, Signature) {
        let a = Scalar::from_bytes_mod_order([seed; 32]);
        let key_point = ED25519_BASEPOINT_POINT * a;
        let key = PublicKey::from_bytes(&key_point.compress().to_bytes()).unwrap();
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress().to_bytes();
        let mut h = Sha512::new();
        h.update(big_r);
        h.update(key.as_bytes());
        write_signing_bytes(Domain::Transaction, CHAIN, msg, |part| h.update(part));
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        (key, Signature(sig))
    }

    fn order_8_point() -> EdwardsPoint {
        // curve25519-dalek's table of the eight small-order points: entry 1 has order 8.
        let t = curve25519_dalek::constants::EIGHT_TORSION[1];
        assert!(!(t + t + t + t).is_identity() && t.mul_by_cofactor().is_identity());
        t
    }

    #[test]
    fn honest_signatures_pass_alone_and_in_batches() {
        let pairs: Vec<(KeyPair, Vec<u8>)> = (0..9u8)
            .map(|i| (KeyPair::from_seed([i + 1; 32]), vec![i; usize::from(i) * 7]))
            .collect();
        let sigs: Vec<Signature> = pairs
            .iter()
            .map(|(k, m)| k.sign(Domain::Transaction, CHAIN, m))
            .collect();
        let keys: Vec<PublicKey> = pairs.iter().map(|(k, _)| k.public()).collect();
        let items: Vec<BatchItem<'_>> = (0..pairs.len())
            .map(|i| BatchItem {
                key: &keys[i],
                domain: Domain::Transaction,
                msg: &pairs[i].1,
                sig: &sigs[i],
            })
            .collect();
        for it in &items {
            assert!(verify_one(it.key, it.domain, CHAIN, it.msg, it.sig));
            assert!(!verify_one(it.key, Domain::Vote, CHAIN, it.msg, it.sig));
        }
        assert!(verify_many(CHAIN, &items));
        assert!(!verify_many("other-chain", &items));
    }

    #[test]
    fn a_torsioned_r_gets_the_same_answer_alone_and_in_every_batch() {
        // Cofactorless batches (random coefficients) would accept this signature in about one
        // batch in eight and reject it in the others, and `verify_strict` always rejects it.
        let t = order_8_point();
        let r = Scalar::from_bytes_mod_order([107; 32]);
        let (key, sig) = forged(7, r, t, b"transfer");
        assert!(verify_one(
            &key,
            Domain::Transaction,
            CHAIN,
            b"transfer",
            &sig
        ));
        let honest = KeyPair::from_seed([42; 32]);
        let honest_sig = honest.sign(Domain::Transaction, CHAIN, b"other");
        let honest_key = honest.public();
        let items = [
            BatchItem {
                key: &key,
                domain: Domain::Transaction,
                msg: b"transfer",
                sig: &sig,
            },
            BatchItem {
                key: &honest_key,
                domain: Domain::Transaction,
                msg: b"other",
                sig: &honest_sig,
            },
        ];
        for _ in 0..64 {
            assert!(verify_many(CHAIN, &items));
        }
        // The same signature over another message fails alone and in every batch.
        let wrong = [
            BatchItem {
                key: &key,
                domain: Domain::Transaction,
                msg: b"transfeR",
                sig: &sig,
            },
            items[1],
        ];
        assert!(!verify_one(
            &key,
            Domain::Transaction,
            CHAIN,
            b"transfeR",
            &sig
        ));
        for _ in 0..64 {
            assert!(!verify_many(CHAIN, &wrong));
        }
    }

    #[test]
    fn small_order_r_passes_and_non_canonical_s_fails_alone_and_in_batches() {
        // R = t of order 8 and s = k·a: made with the secret, valid under the cofactored
        // equation ([8]t = 0); `verify_strict` would refuse it, and it must get one answer.
        let (key, small_r) = forged(5, Scalar::ZERO, order_8_point(), b"m");
        assert!(verify_one(&key, Domain::Transaction, CHAIN, b"m", &small_r));
        assert!(!verify_one(
            &key,
            Domain::Transaction,
            CHAIN,
            b"n",
            &small_r
        ));
        let k = KeyPair::from_seed([55; 32]);
        let honest_key = k.public();
        let good = k.sign(Domain::Transaction, CHAIN, b"m");
        let mut high_s = good;
        high_s.0[63] |= 0xf0; // s ≥ 2²⁵⁵ − 2²⁵¹ > ℓ
        assert!(!verify_one(
            &honest_key,
            Domain::Transaction,
            CHAIN,
            b"m",
            &high_s
        ));
        for (other_key, other, valid) in [(&key, &small_r, true), (&honest_key, &high_s, false)] {
            let items = [
                BatchItem {
                    key: &honest_key,
                    domain: Domain::Transaction,
                    msg: b"m",
                    sig: &good,
                },
                BatchItem {
                    key: other_key,
                    domain: Domain::Transaction,
                    msg: b"m",
                    sig: other,
                },
            ];
            for _ in 0..16 {
                assert_eq!(verify_many(CHAIN, &items), valid);
            }
        }
    }

    #[test]
    fn coefficients_are_128_bit_and_differ() {
        let mut z = Coefficients::new([9; 32]);
        let all: Vec<Scalar> = (0..9).map(|_| z.next()).collect();
        for (i, a) in all.iter().enumerate() {
            assert_eq!(&a.as_bytes()[16..], &[0u8; 16]);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
