//! The node's home folder: where each file lives, and loading them with errors that name the
//! file at fault.
//!
//! ```text
//! <home>/
//!   config.toml          NodeConfig
//!   genesis.json         the chain's genesis document
//!   keys/                mode 0700
//!     validator.json     consensus key (key-file format of hotledger-crypto)
//!     node.json          libp2p identity: same format; its 32-byte secret seeds an ed25519 key
//!   data/                RocksDB (storage.path; relative paths are inside the home)
//!   safety/              the safety record, kept when data/ is deleted (storage.safety_path)
//!   mempool/admitted.log the transfers acknowledged to clients, replayed at start (mempool.log_path)
//! ```

use std::path::{Path, PathBuf};

use hotledger_crypto::{load_key_file, KeyPair};
use hotledger_genesis::Genesis;

use crate::config::NodeConfig;
use crate::error::NodeError;

/// A node's home folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Home { root: path.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn validator_key_path(&self) -> PathBuf {
        self.keys_dir().join("validator.json")
    }

    /// The libp2p identity key file.
    pub fn node_key_path(&self) -> PathBuf {
        self.keys_dir().join("node.json")
    }

    /// The funded account written by `hotledger init` (not read by the node).
    pub fn account_key_path(&self) -> PathBuf {
        self.keys_dir().join("account.json")
    }

    /// The database folder: `storage.path`, relative to the home unless absolute.
    pub fn data_path(&self, config: &NodeConfig) -> PathBuf {
        if config.storage.path.is_absolute() {
            config.storage.path.clone()
        } else {
            self.root.join(&config.storage.path)
        }
    }

    /// The safety record's folder: `storage.safety_path`, relative to the home unless absolute.
    pub fn safety_path(&self, config: &NodeConfig) -> PathBuf {
        if config.storage.safety_path.is_absolute() {
            config.storage.safety_path.clone()
        } else {
            self.root.join(&config.storage.safety_path)
        }
    }

    /// The admission log's file: `mempool.log_path`, relative to the home unless absolute.
    pub fn admission_log_path(&self, config: &NodeConfig) -> PathBuf {
        if config.mempool.log_path.is_absolute() {
            config.mempool.log_path.clone()
        } else {
            self.root.join(&config.mempool.log_path)
        }
    }

    /// Reads and validates `config.toml`.
    pub fn load_config(&self) -> Result<NodeConfig, NodeError> {
        let path = self.config_path();
        if !path.exists() {
            return Err(self.missing(&path));
        }
        NodeConfig::load(&path)
    }

    /// Reads and validates `genesis.json`; every error names the file.
    pub fn load_genesis(&self) -> Result<Genesis, NodeError> {
        let path = self.genesis_path();
        if !path.exists() {
            return Err(self.missing(&path));
        }
        // Io and Json errors already carry the path.
        let genesis = Genesis::load(&path)?;
        genesis.validate().map_err(|e| NodeError::Home {
            path: path.clone(),
            reason: format!("invalid genesis: {e}"),
        })?;
        Ok(genesis)
    }

    /// The consensus signing key.
    pub fn load_validator_key(&self) -> Result<KeyPair, NodeError> {
        self.load_key(&self.validator_key_path())
    }

    /// The libp2p identity, as a key file; see [`Home::load_libp2p_keypair`].
    pub fn load_node_key(&self) -> Result<KeyPair, NodeError> {
        self.load_key(&self.node_key_path())
    }

    /// The libp2p ed25519 identity seeded by the node key's 32-byte secret.
    pub fn load_libp2p_keypair(&self) -> Result<libp2p::identity::Keypair, NodeError> {
        let key = self.load_node_key()?;
        let mut seed = *key.secret_bytes();
        libp2p::identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| NodeError::Home {
            path: self.node_key_path(),
            reason: format!("not a usable libp2p ed25519 key: {e}"),
        })
    }

    fn load_key(&self, path: &Path) -> Result<KeyPair, NodeError> {
        if !path.exists() && !self.root.exists() {
            return Err(self.missing(path));
        }
        // Key-file errors name the path.
        Ok(load_key_file(path)?)
    }

    fn missing(&self, path: &Path) -> NodeError {
        let reason = if self.root.exists() {
            format!(
                "{} is missing; create a home with `hotledger init --home {}` (or `hotledger testnet`)",
                path.display(),
                self.root.display()
            )
        } else {
            format!(
                "the home folder does not exist ({} not found); create it with `hotledger init --home {}` \
                 or `hotledger testnet`, or pass --home",
                path.display(),
                self.root.display()
            )
        };
        NodeError::Home {
            path: self.root.clone(),
            reason,
        }
    }

    /// Creates the home and `keys/` (mode 0700 on unix).
    pub fn create_dirs(&self) -> Result<(), NodeError> {
        let io = |path: PathBuf| move |source| NodeError::Io { path, source };
        std::fs::create_dir_all(&self.root).map_err(io(self.root.clone()))?;
        let keys = self.keys_dir();
        std::fs::create_dir_all(&keys).map_err(io(keys.clone()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
                .map_err(io(keys.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use hotledger_crypto::save_key_file;

    #[test]
    fn paths() {
        let home = Home::new("/h");
        assert_eq!(home.config_path(), Path::new("/h/config.toml"));
        assert_eq!(home.genesis_path(), Path::new("/h/genesis.json"));
        assert_eq!(
            home.validator_key_path(),
            Path::new("/h/keys/validator.json")
        );
        assert_eq!(home.node_key_path(), Path::new("/h/keys/node.json"));
        let mut config = NodeConfig::default();
        assert_eq!(home.data_path(&config), Path::new("/h/data"));
        config.storage.path = PathBuf::from("/elsewhere/db");
        assert_eq!(home.data_path(&config), Path::new("/elsewhere/db"));
    }

    #[test]
    fn missing_home_suggests_init() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("nope"));
        let err = home.load_config().unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
        assert!(err.contains("hotledger init"), "{err}");
        let err = home.load_genesis().unwrap_err().to_string();
        assert!(err.contains("genesis.json"), "{err}");
        let err = home.load_validator_key().unwrap_err().to_string();
        assert!(err.contains("validator.json"), "{err}");
    }

    #[test]
    fn malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.create_dirs().unwrap();
        std::fs::write(home.config_path(), "moniker = [").unwrap();
        let err = home.load_config().unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
        std::fs::write(home.genesis_path(), "{").unwrap();
        let err = home.load_genesis().unwrap_err().to_string();
        assert!(err.contains("genesis.json"), "{err}");
        let err = home.load_node_key().unwrap_err().to_string();
        assert!(err.contains("node.json"), "{err}");
    }

    #[test]
    fn invalid_genesis_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.create_dirs().unwrap();
        std::fs::write(
            home.genesis_path(),
            r#"{"chain_id":"x","genesis_time_ms":0,"validators":[]}"#,
        )
        .unwrap();
        let err = home.load_genesis().unwrap_err().to_string();
        assert!(
            err.contains("genesis.json") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn keys_load_and_dirs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("h"));
        home.create_dirs().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.keys_dir())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let key = KeyPair::from_seed([9; 32]);
        save_key_file(&home.node_key_path(), &key, false).unwrap();
        assert_eq!(home.load_node_key().unwrap().public(), key.public());
        let libp2p = home.load_libp2p_keypair().unwrap();
        assert_eq!(
            libp2p.public().to_peer_id().to_base58(),
            hotledger_genesis::peer_id_from_node_key([9; 32]).unwrap()
        );
    }
}
