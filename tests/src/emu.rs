//! An `mlab-emu` link emulator in a namespace of its own, between two
//! nodes: stopped on drop. A node dials the emulator's A side, the other
//! node hears the link from its B side; settings change live through the
//! control socket.
//!
//! ```text
//! node a (192.168.<n>.1) -- veth -- [ emulator ns: .2 | 192.168.<n+1>.1 ] -- veth -- node b (192.168.<n+1>.2)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Netns, terminate, veth_named};
use crate::node::binary;

/// A running emulator and the namespace it runs in.
#[derive(Debug)]
pub struct Emu {
    child: Option<Child>,
    control: PathBuf,
    /// Where side A's node dials: `192.168.<net>.2:9000`.
    pub a_side: String,
    /// The emulator's namespace (dropped after the process).
    pub ns: Netns,
}

impl Emu {
    /// Joins `a` (device `dev_a`, 192.168.`net`.1) and `b` (device `dev_b`,
    /// 192.168.`net + 1`.2) through a new namespace tagged `tag` running
    /// `mlab-emu` with `flags` (e.g. `["--delay", "5ms"]`); both nodes use
    /// port 9651. Waits up to 10 s for its control socket.
    pub fn start(tag: &str, a: &Netns, dev_a: &str, b: &Netns, dev_b: &str, net: u8, flags: &[&str]) -> Emu {
        let ns = Netns::new(tag);
        veth_named(a, dev_a, &ns, &format!("{dev_a}e"), net);
        veth_named(&ns, &format!("{dev_b}e"), b, dev_b, net + 1);
        let control = std::env::temp_dir().join(format!("mycelium-test-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&control);
        let a_side = format!("192.168.{net}.2:9000");
        let child = ns
            .command(binary("mlab-emu").to_str().unwrap())
            .args(["--listen-a", &a_side, "--peer-a", &format!("192.168.{net}.1:9651")])
            .args(["--listen-b", &format!("192.168.{}.1:9000", net + 1)])
            .args(["--peer-b", &format!("192.168.{}.2:9651", net + 1)])
            .args(["--control", control.to_str().unwrap()])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mlab-emu");
        let emu = Emu { child: Some(child), control, a_side, ns };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&emu.control).is_err() {
            assert!(Instant::now() < deadline, "mlab-emu did not open its control socket in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        emu
    }

    /// Sends one control line (JSON, e.g. `{"up":false}`) and returns the
    /// answer; panics unless it says `"ok":true`.
    pub fn set(&self, json: &str) -> String {
        let mut conn = UnixStream::connect(&self.control).expect("connect to the control socket");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(format!("{json}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(conn).read_line(&mut answer).expect("an answer from mlab-emu");
        assert!(answer.contains("\"ok\":true"), "mlab-emu refused {json}: {answer}");
        answer
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.control);
    }
}
