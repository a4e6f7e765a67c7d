//! Merkle proofs: the binary tree of crypto/src/merkle.rs (transaction roots) and the account
//! proofs of the state tree (ledger/src/root/proof.rs, jmt).
//!
//! A tree is built from the input, a genuine proof taken (it must verify), then the input
//! mutates the proof, the leaf and what it claims. The property is that a proof that verifies
//! belongs to the root:
//! * binary tree: the proven leaf is one of the tree's leaves, and when the proof's
//!   `leaf_count` is the tree's (callers check it against a trusted count) it is the leaf at the
//!   proof's `index`;
//! * state tree: the account (or absence) a proof verifies for a key is that key's account at
//!   the root's height.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use hotledger_crypto::{merkle_proof, merkle_root, verify_merkle_proof, Digest, MerkleProof};
use hotledger_fuzz::{arbitrary_public, key, KEYS};
use hotledger_ledger::root::{verify_account_proof, AccountProof, MemoryTreeStore, StateTree};
use hotledger_ledger::{Account, AccountReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.arbitrary::<bool>() {
        Ok(false) => binary(&mut u),
        Ok(true) => state(&mut u),
        Err(_) => Ok(()),
    };
});

#[derive(Arbitrary, Debug)]
enum Mutation {
    Leaf(u8),
    Index(u64),
    IndexDelta(i8),
    LeafCount(u64),
    LeafCountDelta(i8),
    FlipSibling { at: u8, bit: u8 },
    DropSibling(u8),
    InsertSibling { at: u8, value: [u8; 32] },
    CopySibling { from: u8, to: u8 },
    SwapSiblings(u8, u8),
}

/// A leaf from one byte, so that repeated leaves are common.
fn leaf(b: u8) -> Digest {
    Digest::of(&[b])
}

fn binary(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1..=80usize)?;
    let mut leaves = Vec::with_capacity(n);
    for _ in 0..n {
        leaves.push(leaf(u.arbitrary()?));
    }
    let root = merkle_root(&leaves);
    let index = u.choose_index(n)?;
    let mut proof = merkle_proof(&leaves, index).expect("in range");
    assert!(
        verify_merkle_proof(&root, &leaves[index], &proof),
        "a genuine proof fails"
    );
    let mut claimed = leaves[index];
    let mutations = u.int_in_range(1..=4)?;
    for _ in 0..mutations {
        mutate(&mut proof, &mut claimed, u.arbitrary()?);
    }
    if verify_merkle_proof(&root, &claimed, &proof) {
        assert!(
            leaves.contains(&claimed),
            "a proof verified a leaf not in the tree"
        );
        if proof.leaf_count == n as u64 {
            let at = usize::try_from(proof.index).expect("index < leaf_count");
            assert_eq!(
                leaves[at], claimed,
                "a proof verified the wrong leaf at its index"
            );
        }
    }
    Ok(())
}

fn mutate(proof: &mut MerkleProof, claimed: &mut Digest, m: Mutation) {
    let len = proof.siblings.len();
    match m {
        Mutation::Leaf(b) => *claimed = leaf(b),
        Mutation::Index(i) => proof.index = i,
        Mutation::IndexDelta(d) => proof.index = proof.index.wrapping_add_signed(d.into()),
        Mutation::LeafCount(c) => proof.leaf_count = c,
        Mutation::LeafCountDelta(d) => {
            proof.leaf_count = proof.leaf_count.wrapping_add_signed(d.into())
        }
        Mutation::FlipSibling { at, bit } if len > 0 => {
            proof.siblings[usize::from(at) % len].0[usize::from(bit / 8) % 32] ^= 1 << (bit % 8)
        }
        Mutation::DropSibling(at) if len > 0 => {
            proof.siblings.remove(usize::from(at) % len);
        }
        Mutation::InsertSibling { at, value } => proof
            .siblings
            .insert(usize::from(at) % (len + 1), Digest(value)),
        Mutation::CopySibling { from, to } if len > 0 => {
            proof.siblings[usize::from(to) % len] = proof.siblings[usize::from(from) % len]
        }
        Mutation::SwapSiblings(a, b) if len > 0 => proof
            .siblings
            .swap(usize::from(a) % len, usize::from(b) % len),
        _ => {}
    }
}

fn state(u: &mut Unstructured<'_>) -> Result<()> {
    let mut accounts = Vec::new();
    for i in 0..KEYS {
        if u.arbitrary()? {
            accounts.push((key(i).public(), u64::from(u.arbitrary::<u32>()?)));
        }
    }
    if accounts.is_empty() {
        accounts.push((key(0).public(), 1));
    }
    let store = MemoryTreeStore::new();
    let Ok((mut tree, mut root)) = StateTree::genesis(&store, &accounts) else {
        return Ok(());
    };
    if u.arbitrary()? {
        let mut updates = BTreeMap::new();
        for _ in 0..u.int_in_range(1..=4)? {
            let account = Account {
                balance: u.arbitrary()?,
                nonce: u.arbitrary()?,
            };
            updates.insert(arbitrary_public(u)?, account);
        }
        root = tree
            .apply(&updates)
            .expect("applying updates to a memory tree");
    }
    assert_eq!(tree.root().expect("root"), root);
    let asked = arbitrary_public(u)?;
    let (account, proof) = tree.prove(&asked).expect("prove");
    assert_eq!(
        account,
        tree.account(&asked).expect("read"),
        "proof and read disagree"
    );
    verify_account_proof(&root, &asked, account.as_ref(), &proof).expect("a genuine proof fails");

    // What a forger controls: the key, the account, and the proof's bytes.
    let claimed_key = if u.arbitrary()? {
        arbitrary_public(u)?
    } else {
        asked
    };
    let claimed = match u.int_in_range(0..=2)? {
        0 => account,
        1 => None,
        _ => Some(Account {
            balance: u.arbitrary()?,
            nonce: u.arbitrary()?,
        }),
    };
    let mut bytes = postcard::to_allocvec(&proof).expect("a proof encodes");
    for _ in 0..u.int_in_range(0..=3)? {
        if bytes.is_empty() {
            break;
        }
        let at = u.choose_index(bytes.len())?;
        bytes[at] ^= u.arbitrary::<u8>()?;
    }
    let Ok(forged) = postcard::from_bytes::<AccountProof>(&bytes) else {
        return Ok(());
    };
    if verify_account_proof(&root, &claimed_key, claimed.as_ref(), &forged).is_ok() {
        let real = tree.account(&claimed_key).expect("read");
        assert_eq!(
            claimed, real,
            "a proof verified an account the root does not hold"
        );
    }
    Ok(())
}
