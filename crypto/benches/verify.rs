//! Micro-benchmarks of the signature paths every transaction and vote takes.
//!
//! `cargo bench -p hotledger-crypto --bench verify`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hotledger_crypto::{signing_bytes, verify_batch, BatchItem, Domain, KeyPair, PublicKey};

const CHAIN: &str = "bench";

fn signed(n: usize) -> Vec<(PublicKey, Vec<u8>, hotledger_crypto::Signature)> {
    (0..n)
        .map(|i| {
            let kp = KeyPair::from_seed([(i % 251) as u8; 32]);
            let msg = format!("transfer {i}").into_bytes();
            let sig = kp.sign(Domain::Transaction, CHAIN, &msg);
            (kp.public(), msg, sig)
        })
        .collect()
}

fn bench_verify(c: &mut Criterion) {
    let items = signed(1024);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        let (key, msg, sig) = &items[0];
        b.iter(|| key.verify(Domain::Transaction, CHAIN, msg, sig))
    });
    // A key seen before comes from the cache; a new one costs the decompression.
    group.bench_function("public_key_cached", |b| {
        let bytes = items[0].0.to_bytes();
        b.iter(|| PublicKey::from_bytes(&bytes))
    });
    group.bench_function("decompress_uncached", |b| {
        let bytes = items[0].0.to_bytes();
        b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(|k| k.is_weak()))
    });
    group.finish();

    let mut group = c.benchmark_group("verify_batch");
    for size in [16usize, 64, 256, 1024] {
        group.throughput(Throughput::Elements(size as u64));
        let batch: Vec<BatchItem<'_>> = items[..size]
            .iter()
            .map(|(key, msg, sig)| BatchItem {
                key,
                domain: Domain::Transaction,
                msg,
                sig,
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("hotledger", size), &batch, |b, batch| {
            b.iter(|| verify_batch(CHAIN, batch))
        });
        // ed25519-dalek's (cofactorless, transcript-derived coefficients) on the same items.
        let messages: Vec<Vec<u8>> = items[..size]
            .iter()
            .map(|(_, msg, _)| signing_bytes(Domain::Transaction, CHAIN, msg))
            .collect();
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let sigs: Vec<ed25519_dalek::Signature> = items[..size]
            .iter()
            .map(|(_, _, sig)| ed25519_dalek::Signature::from_bytes(&sig.0))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> = items[..size]
            .iter()
            .filter_map(|(key, _, _)| ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).ok())
            .collect();
        group.bench_function(BenchmarkId::new("ed25519-dalek", size), |b| {
            b.iter(|| ed25519_dalek::verify_batch(&messages, &sigs, &keys))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
