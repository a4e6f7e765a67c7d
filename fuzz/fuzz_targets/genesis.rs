//! Genesis JSON (genesis/src): `Genesis::from_json` and `validate()`.
//!
//! Properties: a parsed document re-serializes (pretty, as `save` writes it, and canonical) and
//! parses back equal, with the same hash; `canonical_bytes` is a fixed point; `validate` never
//! panics and gives the same answer on the round-tripped document; a valid document yields a
//! validator set, consensus params and a genesis block without panicking.
#![no_main]

use std::path::Path;

use hotledger_genesis::Genesis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("genesis.json");
    let Ok(genesis) = Genesis::from_json(data, path) else {
        return;
    };
    let valid = genesis.validate();
    let pretty = serde_json::to_vec_pretty(&genesis).expect("a genesis serializes");
    let back = Genesis::from_json(&pretty, path).expect("the pretty form parses");
    assert_eq!(back, genesis, "pretty JSON round trip");
    let canonical = genesis.canonical_bytes();
    let from_canonical = Genesis::from_json(&canonical, path).expect("the canonical form parses");
    assert_eq!(from_canonical, genesis, "canonical JSON round trip");
    assert_eq!(
        from_canonical.canonical_bytes(),
        canonical,
        "canonical bytes not a fixed point"
    );
    assert_eq!(back.hash(), genesis.hash());
    assert_eq!(
        back.validate().is_ok(),
        valid.is_ok(),
        "validation changed on a round trip"
    );
    if valid.is_ok() {
        let set = genesis
            .validator_set()
            .expect("a valid genesis has a validator set");
        assert_eq!(set.len(), genesis.validators.len());
        let _ = genesis.consensus_params();
        let _ = genesis.genesis_block();
        assert!(
            genesis.total_supply()
                >= genesis
                    .accounts
                    .iter()
                    .map(|a| a.balance)
                    .max()
                    .unwrap_or(0)
        );
    }
});
