//! The single error type of this crate.

use std::path::PathBuf;

/// Every failure this crate can report.
///
/// Variants carry typed fields so callers can match on them; the `Display`
/// messages are meant to be shown to operators as-is.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A hex string could not be decoded (bad character, odd length, ...).
    #[error("invalid hex for {what}: {reason}")]
    InvalidHex {
        /// What was being decoded, e.g. `"digest"`.
        what: &'static str,
        /// Why decoding failed.
        reason: String,
    },
    /// A byte string had the wrong length.
    #[error("wrong length for {what}: expected {expected} bytes, got {got}")]
    WrongLength {
        /// What was being decoded, e.g. `"public key"`.
        what: &'static str,
        /// The required length in bytes.
        expected: usize,
        /// The length that was supplied, in bytes.
        got: usize,
    },
    /// The bytes are not a valid compressed Edwards point.
    #[error("invalid public key: not a valid compressed Edwards point")]
    InvalidPublicKey,
    /// The point is of small order, so signatures under it are not binding.
    #[error("weak public key: point of small order")]
    WeakPublicKey,
    /// A single signature did not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// An item of a batch did not verify; `index` is the first bad one.
    #[error("bad signature at batch index {index}")]
    BadSignature {
        /// Position of the first failing item in the batch.
        index: usize,
    },
    /// The key file does not exist.
    #[error("key file not found: {}", path.display())]
    KeyFileNotFound {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// Refused to overwrite an existing key file.
    #[error("key file already exists (refusing to overwrite): {}", path.display())]
    KeyFileExists {
        /// The path that already exists.
        path: PathBuf,
    },
    /// Any other I/O failure while reading or writing a key file.
    #[error("key file I/O error on {}: {source}", path.display())]
    KeyFileIo {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not the expected JSON document.
    #[error("malformed key file {}: {reason}", path.display())]
    KeyFileMalformed {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file's `type` field names another kind of key.
    #[error("key file {} has type {found:?}, expected {:?}", path.display(), crate::keyfile::KEY_FILE_TYPE)]
    KeyFileWrongType {
        /// The file involved.
        path: PathBuf,
        /// The `type` value that was found.
        found: String,
    },
    /// The stored public key is not the one derived from the stored secret.
    #[error("key file {}: public key does not match secret key", path.display())]
    KeyFileMismatch {
        /// The file involved.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_readable() {
        let e = CryptoError::WrongLength {
            what: "public key",
            expected: 32,
            got: 3,
        };
        assert_eq!(
            e.to_string(),
            "wrong length for public key: expected 32 bytes, got 3"
        );
        let e = CryptoError::KeyFileWrongType {
            path: PathBuf::from("/k.json"),
            found: "rsa".into(),
        };
        assert_eq!(
            e.to_string(),
            "key file /k.json has type \"rsa\", expected \"hotledger-ed25519-secret-key\""
        );
        let e = CryptoError::BadSignature { index: 7 };
        assert_eq!(e.to_string(), "bad signature at batch index 7");
    }
}
