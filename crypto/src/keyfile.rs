//! Secret key files.
//!
//! A key file is a small JSON document:
//!
//! ```json
//! {"type": "hotledger-ed25519-secret-key", "public_key": "<64 hex>", "secret_key": "<64 hex>"}
//! ```
//!
//! `secret_key` is the 32-byte Ed25519 seed; `public_key` is redundant and
//! checked against it on load, which catches truncated or hand-edited files.
//! Files are written atomically with mode `0600` on unix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::keys::{KeyPair, PublicKey};
use crate::CryptoError;

/// The `type` field of every key file.
pub const KEY_FILE_TYPE: &str = "hotledger-ed25519-secret-key";

/// Upper bound on a key file's size; a real one is about 170 bytes.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

#[derive(serde::Serialize)]
struct KeyFileOut<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    public_key: &'a str,
    secret_key: &'a str,
}

#[derive(serde::Deserialize)]
struct KeyFileType {
    #[serde(rename = "type")]
    ty: String,
}

#[derive(serde::Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct KeyFileIn {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    ty: String,
    public_key: String,
    secret_key: String,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CryptoError + '_ {
    move |source| CryptoError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    }
}

/// A fresh, unused name next to `path` for the temporary file.
fn temp_path(path: &Path, attempt: u32) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".to_owned());
    path.with_file_name(format!(
        ".{name}.tmp.{}.{n}.{nanos}.{attempt}",
        std::process::id()
    ))
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// The contents of `key`'s key file (format in the module docs), zeroed when dropped; for
/// callers that write many key files and make them durable another way.
pub fn key_file_bytes(key: &KeyPair) -> io::Result<Zeroizing<Vec<u8>>> {
    let secret_hex = Zeroizing::new(hex::encode(*key.secret_bytes()));
    let public_hex = key.public().to_hex();
    // Reserve enough up front that serialisation never reallocates and
    // leaves stray copies of the secret in freed memory.
    let mut json = Zeroizing::new(Vec::with_capacity(512));
    serde_json::to_writer(
        &mut *json,
        &KeyFileOut {
            ty: KEY_FILE_TYPE,
            public_key: &public_hex,
            secret_key: &secret_hex,
        },
    )
    .map_err(io::Error::other)?;
    json.push(b'\n');
    Ok(json)
}

/// Writes `key` to `path` as a key file (format in the module docs).
///
/// The file is first written and synced under a temporary name in the same
/// directory (created with mode `0600` on unix), then moved into place, so
/// readers never see a partial file. Without `overwrite`, an existing `path`
/// gives [`CryptoError::KeyFileExists`]; this is checked atomically (the
/// temporary file is hard-linked to `path`, which fails if it exists).
/// With `overwrite`, the file is atomically replaced by a rename.
pub fn save_key_file(path: &Path, key: &KeyPair, overwrite: bool) -> Result<(), CryptoError> {
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(CryptoError::KeyFileExists {
            path: path.to_path_buf(),
        });
    }

    let json = key_file_bytes(key).map_err(|e| io_err(path)(e))?;

    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = temp_path(path, attempt);
        match create_private(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(io_err(path)(e)),
        }
    };

    let result = (|| {
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            fs::rename(&tmp, path)
        } else {
            fs::hard_link(&tmp, path)
        }
    })();
    // The temporary name is gone after a rename; after a hard link (or a
    // failure) it must be removed. Errors here are not worth reporting.
    let _ = fs::remove_file(&tmp);

    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(CryptoError::KeyFileExists {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(path)(e)),
    }

    // Make the new directory entry durable. Best effort: not every platform
    // lets a directory be opened and synced.
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a key file written by [`save_key_file`].
///
/// Errors: a missing file is [`CryptoError::KeyFileNotFound`]; other I/O
/// failures are [`CryptoError::KeyFileIo`]; a file that is not valid JSON of
/// the expected shape (or has bad hex, unknown fields, ...) is
/// [`CryptoError::KeyFileMalformed`]; a `type` other than [`KEY_FILE_TYPE`]
/// is [`CryptoError::KeyFileWrongType`]; a `public_key` that is not the one
/// derived from `secret_key` is [`CryptoError::KeyFileMismatch`].
pub fn load_key_file(path: &Path) -> Result<KeyPair, CryptoError> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CryptoError::KeyFileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            io_err(path)(e)
        }
    })?;
    let mut text = Zeroizing::new(String::with_capacity(512));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                malformed(path, "not valid UTF-8".to_owned())
            } else {
                io_err(path)(e)
            }
        })?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(malformed(
            path,
            format!("larger than {MAX_KEY_FILE_LEN} bytes"),
        ));
    }

    let ty: KeyFileType =
        serde_json::from_str(&text).map_err(|e| malformed(path, e.to_string()))?;
    if ty.ty != KEY_FILE_TYPE {
        return Err(CryptoError::KeyFileWrongType {
            path: path.to_path_buf(),
            found: ty.ty,
        });
    }
    let parsed: KeyFileIn =
        serde_json::from_str(&text).map_err(|e| malformed(path, e.to_string()))?;

    let public = PublicKey::from_hex(&parsed.public_key)
        .map_err(|e| malformed(path, format!("public_key: {e}")))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    if parsed.secret_key.len() != 64 {
        return Err(malformed(
            path,
            "secret_key: expected 64 hex characters".to_owned(),
        ));
    }
    // The hex error message never includes the input, so no secret leaks.
    hex::decode_to_slice(&parsed.secret_key, &mut *seed)
        .map_err(|e| malformed(path, format!("secret_key: {e}")))?;

    let key = KeyPair::from_seed(*seed);
    if key.public() != public {
        return Err(CryptoError::KeyFileMismatch {
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}

fn malformed(path: &Path, reason: String) -> CryptoError {
    CryptoError::KeyFileMalformed {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, s: &str) {
        fs::write(path, s).unwrap();
    }

    #[test]
    fn save_load_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = KeyPair::from_seed([7; 32]);
        save_key_file(&path, &key, false).unwrap();
        let loaded = load_key_file(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(*loaded.secret_bytes(), *key.secret_bytes());

        let text = fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], KEY_FILE_TYPE);
        assert_eq!(v["public_key"], key.public().to_hex());
        assert_eq!(v["secret_key"], hex::encode([7u8; 32]));
        assert_eq!(v.as_object().unwrap().len(), 3);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        save_key_file(&path, &KeyPair::from_seed([1; 32]), false).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        save_key_file(&path, &KeyPair::from_seed([2; 32]), true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let a = KeyPair::from_seed([1; 32]);
        let b = KeyPair::from_seed([2; 32]);
        save_key_file(&path, &a, false).unwrap();
        assert!(matches!(
            save_key_file(&path, &b, false),
            Err(CryptoError::KeyFileExists { path: p }) if p == path
        ));
        assert_eq!(load_key_file(&path).unwrap().public(), a.public());
        save_key_file(&path, &b, true).unwrap();
        assert_eq!(load_key_file(&path).unwrap().public(), b.public());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.key");
        assert!(matches!(
            load_key_file(&path),
            Err(CryptoError::KeyFileNotFound { path: p }) if p == path
        ));
    }

    #[test]
    fn missing_directory_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("node.key");
        assert!(matches!(
            save_key_file(&path, &KeyPair::from_seed([1; 32]), false),
            Err(CryptoError::KeyFileIo { .. })
        ));
        // Reading a directory is an I/O error, not "not found".
        assert!(matches!(
            load_key_file(dir.path()),
            Err(CryptoError::KeyFileIo { .. })
        ));
    }

    #[test]
    fn malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        let k = KeyPair::from_seed([3; 32]);
        let pk = k.public().to_hex();
        let sk = hex::encode(*k.secret_bytes());
        let cases = [
            "not json".to_owned(),
            "".to_owned(),
            "[]".to_owned(),
            format!(r#"{{"public_key":"{pk}","secret_key":"{sk}"}}"#),
            format!(r#"{{"type":"{KEY_FILE_TYPE}","public_key":"{pk}"}}"#),
            format!(r#"{{"type":"{KEY_FILE_TYPE}","public_key":"{pk}","secret_key":"zz"}}"#),
            format!(
                r#"{{"type":"{KEY_FILE_TYPE}","public_key":"{pk}","secret_key":"{}"}}"#,
                "g".repeat(64)
            ),
            format!(r#"{{"type":"{KEY_FILE_TYPE}","public_key":"abcd","secret_key":"{sk}"}}"#),
            format!(
                r#"{{"type":"{KEY_FILE_TYPE}","public_key":"{pk}","secret_key":"{sk}","extra":1}}"#
            ),
        ];
        for c in &cases {
            write(&path, c);
            match load_key_file(&path) {
                Err(CryptoError::KeyFileMalformed { reason, .. }) => {
                    assert!(!reason.contains(&sk), "reason leaks secret: {reason}");
                }
                other => panic!("{c}: expected KeyFileMalformed, got {other:?}"),
            }
        }
        // Non-UTF-8 content.
        fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            load_key_file(&path),
            Err(CryptoError::KeyFileMalformed { .. })
        ));
    }

    #[test]
    fn wrong_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.key");
        write(
            &path,
            r#"{"type":"some-rsa-key","modulus":"00","exponent":"03"}"#,
        );
        assert!(matches!(
            load_key_file(&path),
            Err(CryptoError::KeyFileWrongType { found, .. }) if found == "some-rsa-key"
        ));
    }

    #[test]
    fn mismatched_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mismatch.key");
        let a = KeyPair::from_seed([1; 32]);
        let b = KeyPair::from_seed([2; 32]);
        write(
            &path,
            &format!(
                r#"{{"type":"{KEY_FILE_TYPE}","public_key":"{}","secret_key":"{}"}}"#,
                b.public().to_hex(),
                hex::encode(*a.secret_bytes())
            ),
        );
        assert!(matches!(
            load_key_file(&path),
            Err(CryptoError::KeyFileMismatch { path: p }) if p == path
        ));
    }
}
