//! The params of every JSON-RPC method (node/src/rpc/mod.rs), decoded the way jsonrpsee's
//! generated server decodes them: a JSON array read in order (`next`, or `optional_next` for an
//! `Option`), or a JSON object with the parameter names.
//!
//! | method | params |
//! |---|---|
//! | `submit_transaction` | `tx: SignedTransaction` |
//! | `submit_transactions` | `txs: Vec<SignedTransaction>` |
//! | `get_transaction` | `hash: Digest` |
//! | `get_account` | `public_key: PublicKey` |
//! | `get_block` | `height: Option<u64>` |
//! | `status` | none |
//!
//! Properties: arbitrary text gives Ok or an error object, never a panic; accepted params,
//! serialized back as an array and as an object, decode to equal values.
#![no_main]

use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::SignedTransaction;
use jsonrpsee::types::Params;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SubmitTransaction {
    tx: SignedTransaction,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SubmitTransactions {
    txs: Vec<SignedTransaction>,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct GetTransaction {
    hash: Digest,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct GetAccount {
    public_key: PublicKey,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct GetBlock {
    height: Option<u64>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params = Params::new(Some(text));
    one::<SignedTransaction, SubmitTransaction>(&params, |p| &p.tx, |tx| SubmitTransaction { tx });
    one::<Vec<SignedTransaction>, SubmitTransactions>(
        &params,
        |p| &p.txs,
        |txs| SubmitTransactions { txs },
    );
    one::<Digest, GetTransaction>(&params, |p| &p.hash, |hash| GetTransaction { hash });
    one::<PublicKey, GetAccount>(
        &params,
        |p| &p.public_key,
        |public_key| GetAccount { public_key },
    );
    // `get_block` takes an `Option`: a missing or null first param is the latest block.
    let mut seq = params.sequence();
    if let Ok(height) = seq.optional_next::<u64>() {
        let array = serde_json::to_string(&[height]).expect("serializes");
        let back = Params::new(Some(&array)).sequence().optional_next::<u64>();
        assert_eq!(back.ok(), Some(height), "get_block params round trip");
    }
    if params.is_object() {
        if let Ok(p) = params.parse::<GetBlock>() {
            let text = serde_json::to_string(&p).expect("serializes");
            assert_eq!(Params::new(Some(&text)).parse::<GetBlock>().ok(), Some(p));
        }
    }
    // `status` takes none: jsonrpsee ignores what is sent; nothing to decode.
});

/// One method with a single required parameter `T`, named as in the object form `O`.
fn one<T, O>(params: &Params<'_>, field: fn(&O) -> &T, object: fn(T) -> O)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + Clone,
    O: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    if params.is_object() {
        if let Ok(p) = params.parse::<O>() {
            let text = serde_json::to_string(&p).expect("object params serialize");
            let back: O = Params::new(Some(&text))
                .parse()
                .expect("object params parse back");
            assert_eq!(back, p, "object params round trip");
            check_array(field(&p));
        }
        return;
    }
    if let Ok(value) = params.sequence().next::<T>() {
        check_array(&value);
        let text = serde_json::to_string(&object(value.clone())).expect("serializes");
        let back: O = Params::new(Some(&text))
            .parse()
            .expect("object form parses");
        assert_eq!(field(&back), &value, "object form round trip");
    }
}

fn check_array<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(&[value]).expect("array params serialize");
    let back: T = Params::new(Some(&text))
        .sequence()
        .next()
        .expect("array params parse back");
    assert_eq!(&back, value, "array params round trip");
}
