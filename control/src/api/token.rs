//! The admin API token: made fresh at every daemon start, written where only
//! the daemon's user can read it, and required for changes (see the module
//! docs of [`crate::api`]).
//!
//! ```text
//! let token = api::token::create(&state_dir)?;           // <state_dir>/api.token, mode 0600
//! let api = api::start(&ApiConfig { token: Some(token), ..ApiConfig::default() }, state)?;
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

use super::TOKEN_FILE;

/// Makes a random token (32 bytes, 64 hex digits) and writes it to
/// `dir/api.token` with mode 0600, replacing an old one atomically.
pub fn create(dir: &Path) -> io::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| io::Error::other("no system randomness"))?;
    let token = hex::encode(bytes);
    let tmp = dir.join(format!("{TOKEN_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(TOKEN_FILE))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn each_start_writes_a_new_private_token() {
        let dir = tempfile::tempdir().unwrap();
        let first = create(dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), first);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(first.len(), 64);
        let second = create(dir.path()).unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), second);
    }
}
