//! `mctl key generate` and `mctl key inspect`. With `--json`, both print
//! `{"publicKey", "address", "subnet"}`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use mycelium_common::identity::{PublicKey, SecretKey};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new key file (mode 0600); never overwrites an existing one.
    Generate {
        /// Where to write the raw 32-byte secret key.
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Print the public key and overlay address of a key file or public key.
    Inspect {
        /// A key file to read.
        #[arg(long, conflicts_with = "public_key")]
        key_file: Option<PathBuf>,
        /// A public key as 64 hex digits.
        #[arg(value_name = "PUBKEY_HEX")]
        public_key: Option<String>,
    },
}

pub fn run(cmd: KeyCommand, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { key_file } => {
            let key = SecretKey::generate()?;
            key.save(&key_file)?;
            print_key(&key.public_key(), json, out)
        }
        KeyCommand::Inspect { key_file, public_key } => {
            let key = match (key_file, public_key) {
                (Some(path), None) => SecretKey::load(&path)?.public_key(),
                (None, Some(hex)) => hex.parse::<PublicKey>().context("mctl key inspect")?,
                _ => bail!("give either --key-file FILE or a public key in hex"),
            };
            print_key(&key, json, out)
        }
    }
}

fn print_key(key: &PublicKey, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let address = key.address();
    if json {
        let value = serde_json::json!({
            "publicKey": key.to_hex(),
            "address": address.to_string(),
            "subnet": address.subnet().to_string(),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "public key: {}", key.to_hex())?;
        writeln!(out, "address:    {address}")?;
        writeln!(out, "subnet:     {}", address.subnet())?;
    }
    Ok(())
}
