//! `mctl key` as a user runs it: the real binary, real files.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn mctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mctl"))
}

#[test]
fn generate_creates_a_private_key_file_and_inspect_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let out = mctl().args(["key", "generate", "--key-file"]).arg(&path).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let out = mctl().args(["key", "inspect", "--json", "--key-file"]).arg(&path).output().unwrap();
    assert!(out.status.success());
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(generated, inspected);
    assert_eq!(inspected["publicKey"].as_str().unwrap().len(), 64);
}

#[test]
fn inspect_of_a_deployed_key_gives_its_known_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let mut secret = [0u8; 32];
    secret[31] = 1;
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = mctl().args(["key", "inspect", "--json", "--key-file"]).arg(&path).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["publicKey"], "fd3384e132ad02a56c78f45547ee40038dc79002b90d29ed90e08eee762ae715");
    assert_eq!(v["address"], "5f5:db79:2573:eebf:15e3:4ae0:bb2f:88e1");

    let out = mctl()
        .args(["key", "inspect", "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("430:9364:d8d8:84a9:dd60:de78:c767:d361"), "{text}");
}

#[test]
fn a_key_readable_by_others_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    std::fs::write(&path, [7u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = mctl().args(["key", "inspect", "--key-file"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn bad_public_key_hex_fails_cleanly() {
    let out = mctl().args(["key", "inspect", "xyz"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a public key"));
}
