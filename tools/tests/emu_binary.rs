//! `mlab-emu` as a process: flags, relaying, the control socket, a clean
//! exit on SIGTERM that removes the socket, and clear errors on bad flags.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mycelium_tools::emu::control::request;

const BIN: &str = env!("CARGO_BIN_EXE_mlab-emu");

#[test]
fn the_binary_relays_with_its_flags_takes_control_lines_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ctl.sock");
    let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--delay", "30ms", "--seed", "7"])
        .args(["--peer-b", &b.local_addr().unwrap().to_string(), "--control", sock.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // "mlab-emu: relaying A 127.0.0.1:p <-> B 127.0.0.1:q with ..."
    let words: Vec<&str> = line.split_whitespace().collect();
    let listen_a: SocketAddr = words[3].parse().unwrap_or_else(|_| panic!("unexpected banner {line:?}"));

    let sent = Instant::now();
    a.send_to(b"hello", listen_a).unwrap();
    let mut buf = [0u8; 64];
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert!(sent.elapsed() >= Duration::from_millis(30));

    let reply = request(&sock, r#"{"loss":1.0}"#).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["peer_a"], a.local_addr().unwrap().to_string());
    a.send_to(b"lost", listen_a).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(b.recv(&mut buf).is_err());

    // Safety: kill only sends a signal, to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mlab-emu did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "the control socket was left behind");
}

#[test]
fn bad_flags_are_refused_with_a_message_that_names_them() {
    for (args, expect) in [
        (&["--listen-a", "127.0.0.1:0", "--listen-b", "nowhere"][..], "--listen-b"),
        (&["--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--delay", "10"][..], "bad duration"),
        (&["--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--loss", "120%"][..], "bad probability"),
        (&["--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--rate", "fast"][..], "bad rate"),
        (&["--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--gilbert", "1%"][..], "Gilbert"),
        (&["--listen-a", "127.0.0.1:0"][..], "--listen-b"),
        // TEST-NET-1 is on no interface here.
        (&["--listen-a", "192.0.2.1:5", "--listen-b", "127.0.0.1:0"][..], "cannot bind 192.0.2.1:5"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
