//! A node's identity: an x25519 key pair, and the key file that holds it.
//!
//! The key file is the raw 32 secret bytes, mode 0600: the format deployed
//! mycelium nodes already use, so moving a node keeps its address. Loading
//! refuses a file that group or others may read, and says how to fix it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::address::OverlayAddress;

/// Length of keys and of the key file, in bytes.
pub const KEY_LEN: usize = 32;

/// An x25519 secret key. Never printed; zeroed on drop.
#[derive(Clone)]
pub struct SecretKey(x25519_dalek::StaticSecret);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new().fill(bytes.as_mut()).map_err(|_| IdentityError::Random)?;
        Ok(SecretKey::from_bytes(*bytes))
    }

    /// Wraps raw secret bytes (as stored in a key file).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(x25519_dalek::StaticSecret::from(bytes))
    }

    /// The raw secret bytes, for writing the key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that goes with this secret.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The overlay address this key owns.
    pub fn address(&self) -> OverlayAddress {
        OverlayAddress::from_public_key(&self.public_key())
    }

    /// x25519 agreement with a peer's public key. The result feeds a KDF,
    /// never a cipher directly (see [`crate::crypto::kdf`]).
    pub fn agree(&self, peer: &PublicKey) -> Zeroizing<[u8; KEY_LEN]> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        Zeroizing::new(shared.to_bytes())
    }

    /// Reads a key file, refusing one that is not private to its owner.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let err = |source| IdentityError::Io { path: path.to_owned(), source };
        let mut file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Permissions { path: path.to_owned(), mode });
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(IdentityError::Length { path: path.to_owned(), len: meta.len() });
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        file.read_exact(bytes.as_mut()).map_err(err)?;
        Ok(SecretKey::from_bytes(*bytes))
    }

    /// Writes a new key file with mode 0600. Never overwrites an existing one.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let err = |source| IdentityError::Io { path: path.to_owned(), source };
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
        file.write_all(self.to_bytes().as_ref()).map_err(err)?;
        file.sync_all().map_err(err)
    }

    /// Loads the key file, or creates it with a fresh key when it does not
    /// exist. Returns the key and whether it was created.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), IdentityError> {
        match SecretKey::load(path) {
            Ok(key) => Ok((key, false)),
            Err(IdentityError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let key = SecretKey::generate()?;
                key.save(path)?;
                Ok((key, true))
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// An x25519 public key: a node's identity on the mesh.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps raw public key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// Borrows the raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Lower-case hex, as printed by `mctl key inspect`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The overlay address this key owns.
    pub fn address(&self) -> OverlayAddress {
        OverlayAddress::from_public_key(self)
    }
}

impl FromStr for PublicKey {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| IdentityError::PublicKeyHex(s.to_owned()))?;
        Ok(PublicKey(bytes))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("key file {path} has mode {mode:04o}: it must not be readable by group or others (run `chmod 600 {path}`)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is {len} bytes long; a key file is exactly 32 raw bytes")]
    Length { path: PathBuf, len: u64 },
    #[error("{0:?} is not a public key: expected 64 hex digits")]
    PublicKeyHex(String),
    #[error("the operating system's random source failed")]
    Random,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = SecretKey::generate().unwrap();
        key.save(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let loaded = SecretKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
    }

    #[test]
    fn save_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        SecretKey::generate().unwrap().save(&path).unwrap();
        assert!(matches!(SecretKey::generate().unwrap().save(&path), Err(IdentityError::Io { .. })));
    }

    #[test]
    fn load_refuses_a_key_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        SecretKey::generate().unwrap().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::load(&path).unwrap_err();
        assert!(matches!(err, IdentityError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn load_refuses_a_file_of_the_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, [0u8; 31]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(SecretKey::load(&path), Err(IdentityError::Length { len: 31, .. })));
    }

    #[test]
    fn load_or_generate_creates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let (first, created) = SecretKey::load_or_generate(&path).unwrap();
        assert!(created);
        let (second, created) = SecretKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), second.public_key());
    }

    #[test]
    fn agreement_is_symmetric() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_eq!(*a.agree(&b.public_key()), *b.agree(&a.public_key()));
    }

    #[test]
    fn public_key_hex_round_trips_and_rejects_garbage() {
        let key = SecretKey::generate().unwrap().public_key();
        assert_eq!(key.to_hex().parse::<PublicKey>().unwrap(), key);
        assert!("abcd".parse::<PublicKey>().is_err());
        assert!("zz".repeat(32).parse::<PublicKey>().is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = SecretKey::from_bytes([7; 32]);
        assert!(!format!("{key:?}").contains(&hex::encode([7u8; 32])));
    }
}
