//! `load_key_file` (crypto/src/keyfile.rs) on arbitrary bytes written to a file.
//!
//! Properties: it never panics; an accepted file is a JSON object whose `type` is the key file
//! type, whose `secret_key` is the returned key's seed and whose `public_key` names the returned
//! key's public key; the key's own file (`key_file_bytes`) loads back to the same key.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hotledger_crypto::{key_file_bytes, load_key_file, PublicKey, KEY_FILE_TYPE};
use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, written for each input and removed after it (`-jobs=N` runs N
/// processes); in memory (`/dev/shm`) where there is one, else in the temporary folder.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "hotledger-fuzz-keyfile-{}.json",
            std::process::id()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("writing the key file");
    let loaded = load_key_file(path);
    let _ = std::fs::remove_file(path);
    let Ok(key) = loaded else {
        return;
    };
    let doc: serde_json::Value = serde_json::from_slice(data).expect("an accepted file is JSON");
    assert_eq!(doc["type"], KEY_FILE_TYPE);
    let public = doc["public_key"].as_str().expect("public_key is a string");
    assert_eq!(
        PublicKey::from_hex(public).ok(),
        Some(key.public()),
        "public key mismatch"
    );
    let secret = doc["secret_key"].as_str().expect("secret_key is a string");
    assert_eq!(
        hex::decode(secret).ok().as_deref(),
        Some(&key.secret_bytes()[..]),
        "seed mismatch"
    );

    let own = key_file_bytes(&key).expect("a key file serializes");
    std::fs::write(path, &*own).expect("writing the key file");
    let again = load_key_file(path);
    let _ = std::fs::remove_file(path);
    let again = again.expect("a key's own file loads");
    assert_eq!(again.public(), key.public());
    assert_eq!(*again.secret_bytes(), *key.secret_bytes());
});
