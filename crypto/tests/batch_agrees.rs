//! A batch gives every signature the answer it gets alone.

use hotledger_crypto::{verify_batch_each, BatchItem, Domain, KeyPair, PublicKey, Signature};
use proptest::prelude::*;

const CHAIN: &str = "hotledger-prop";

/// How an item is damaged before the batch is checked.
#[derive(Clone, Copy, Debug)]
enum Damage {
    None,
    FlipSignatureBit(usize),
    ChangeMessage,
    OtherDomain,
    OtherKey,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => (0usize..512).prop_map(Damage::FlipSignatureBit),
        1 => Just(Damage::ChangeMessage),
        1 => Just(Damage::OtherDomain),
        1 => Just(Damage::OtherKey),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batch_flags_equal_single_checks(damages in prop::collection::vec(damage(), 1..40)) {
        let pairs: Vec<KeyPair> = (0..damages.len())
            .map(|i| KeyPair::from_seed([u8::try_from(i % 200).unwrap_or(0) + 20; 32]))
            .collect();
        let mut keys: Vec<PublicKey> = pairs.iter().map(KeyPair::public).collect();
        let mut msgs: Vec<Vec<u8>> = (0..damages.len()).map(|i| format!("transfer {i}").into_bytes()).collect();
        let mut sigs: Vec<Signature> = pairs
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(Domain::Transaction, CHAIN, m))
            .collect();
        let mut domains = vec![Domain::Transaction; damages.len()];
        let other = KeyPair::from_seed([250; 32]).public();
        for (i, d) in damages.iter().enumerate() {
            match *d {
                Damage::None => {}
                Damage::FlipSignatureBit(bit) => sigs[i].0[bit / 8] ^= 1 << (bit % 8),
                Damage::ChangeMessage => msgs[i].push(b'!'),
                Damage::OtherDomain => domains[i] = Domain::Vote,
                Damage::OtherKey => keys[i] = other,
            }
        }
        let items: Vec<BatchItem<'_>> = (0..damages.len())
            .map(|i| BatchItem { key: &keys[i], domain: domains[i], msg: &msgs[i], sig: &sigs[i] })
            .collect();
        let alone: Vec<bool> = items
            .iter()
            .map(|it| it.key.verify(it.domain, CHAIN, it.msg, it.sig).is_ok())
            .collect();
        prop_assert_eq!(verify_batch_each(CHAIN, &items), alone.clone());
        // Undamaged items verify; so do damaged ones only if the damage left them valid (a flipped
        // bit can't: the signature would have to stay valid for the same message and key).
        for (d, ok) in damages.iter().zip(&alone) {
            prop_assert_eq!(*ok, matches!(d, Damage::None));
        }
    }
}
