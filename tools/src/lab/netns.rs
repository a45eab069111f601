//! Network namespaces, veth pairs and a checked TCP transfer, for the lab
//! and the end-to-end tests. A namespace made by [`Netns::new`] is named
//! after the process's pid and a tag and removed by a `Drop` guard, so a
//! failing test still cleans up; one named by [`Netns::existing`] (a lab's)
//! is left alone. Every wait is bounded. Shared by the lab, the tests crate
//! (which re-exports it) and the dataplane's tests (which include this file
//! by path: it needs nothing but std and libc).

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the tests can create namespaces (root with `ip`); if not they say so and pass.
pub fn privileged() -> bool {
    // Safety: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if !root || !ip {
        eprintln!("skipping: needs root and iproute2 (root: {root}, ip: {ip})");
    }
    root && ip
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// Whether drop deletes it.
    owned: bool,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("mdp{}{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace that exists already and that drop leaves alone.
    pub fn existing(name: &str) -> Netns {
        Netns { name: name.to_owned(), owned: false }
    }

    /// `ip -n <ns> ...`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered this namespace (panics if it cannot enter).
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
    }

    /// Runs `f` on a thread that has entered this namespace; the thread's
    /// result is the error if it could not.
    pub fn spawn_checked<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<std::io::Result<T>> {
        let path = self.path();
        std::thread::spawn(move || enter(&path).map(|()| f()))
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) -> std::io::Result<()> {
    let file = File::open(path)?;
    // Safety: setns on an open namespace file; it only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Joins two namespaces with a veth pair and gives each end an IPv4 and an IPv6 address:
/// 192.168.<net>.1 / fd00:<net>::1 in `a`, .2 / ::2 in `b`.
pub fn veth(a: &Netns, b: &Netns, net: u8) {
    let (ea, eb) = (format!("{}a", a.name), format!("{}b", b.name));
    run("ip", &["link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns", &b.name]);
    for (ns, dev, host) in [(a, &ea, 1), (b, &eb, 2)] {
        ns.ip(&["addr", "add", &format!("192.168.{net}.{host}/24"), "dev", dev]);
        ns.ip(&["-6", "addr", "add", &format!("fd00:{net}::{host}/64"), "dev", dev, "nodad"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

/// Joins two namespaces with a veth pair named `dev_a` (in `a`) and `dev_b`
/// (in `b`), addressed like [`veth`]; for namespaces with several links.
pub fn veth_named(a: &Netns, dev_a: &str, b: &Netns, dev_b: &str, net: u8) {
    run("ip", &["link", "add", dev_a, "netns", &a.name, "type", "veth", "peer", "name", dev_b, "netns", &b.name]);
    for (ns, dev, host) in [(a, dev_a, 1), (b, dev_b, 2)] {
        ns.ip(&["addr", "add", &format!("192.168.{net}.{host}/24"), "dev", dev]);
        ns.ip(&["-6", "addr", "add", &format!("fd00:{net}::{host}/64"), "dev", dev, "nodad"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

/// Makes `hub` a switch: a bridge `br0` (multicast snooping off, so LAN
/// beacons are flooded) with a veth port to each of `members`, whose end is
/// named after the namespace and addressed 192.168.<net>.<i+1> / fd00:<net>::<i+1>.
/// Returns the members' device names.
pub fn bridge(hub: &Netns, members: &[&Netns], net: u8) -> Vec<String> {
    hub.ip(&["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
    hub.ip(&["link", "set", "br0", "up"]);
    let mut devs = Vec::new();
    for (i, ns) in members.iter().enumerate() {
        let (dev, port) = (format!("{}e", ns.name), format!("p{i}"));
        run("ip", &["link", "add", &dev, "netns", &ns.name, "type", "veth", "peer", "name", &port, "netns", &hub.name]);
        hub.ip(&["link", "set", &port, "master", "br0"]);
        hub.ip(&["link", "set", &port, "up"]);
        ns.ip(&["addr", "add", &format!("192.168.{net}.{}/24", i + 1), "dev", &dev]);
        ns.ip(&["-6", "addr", "add", &format!("fd00:{net}::{}/64", i + 1), "dev", &dev, "nodad"]);
        ns.ip(&["link", "set", &dev, "up"]);
        devs.push(dev);
    }
    devs
}

/// A deterministic byte stream (xorshift64*): the sender fills its writes
/// from one, the receiver compares what it reads with another of the same
/// seed, whatever the chunk boundaries.
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream { state: seed | 1, word: [0; 8], used: 8 }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// Listens on `addr` and accepts one connection within `within`; the
/// connection blocks, with a 20 s read timeout.
pub fn try_accept_one(addr: SocketAddr, within: Duration) -> std::io::Result<TcpStream> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + within;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(conn)
}

/// [`try_accept_one`] within 15 s, panicking otherwise.
pub fn accept_one(addr: SocketAddr) -> TcpStream {
    try_accept_one(addr, Duration::from_secs(15)).unwrap_or_else(|e| panic!("accept on {addr}: {e}"))
}

/// Connects to `addr`, retrying for up to `within` while the listener
/// comes up; writes time out after 20 s.
pub fn try_connect_within(addr: SocketAddr, within: Duration) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + within;
    let conn = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e),
        }
    };
    conn.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(conn)
}

/// [`try_connect_within`] 10 s, panicking otherwise.
pub fn connect_within(addr: SocketAddr) -> TcpStream {
    try_connect_within(addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Sends `bytes` from a thread in `from` to a listener in `to` at
/// `addr`, and checks every byte on arrival. Returns the seconds it took.
pub fn transfer(from: &Netns, to: &Netns, addr: SocketAddr, bytes: usize) -> f64 {
    let server = to.spawn(move || {
        let mut conn = accept_one(addr);
        let start = Instant::now();
        let mut expected = Stream::new(0x5eed);
        let (mut got, mut want) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        let mut total = 0usize;
        loop {
            let n = conn.read(&mut got).expect("read (timed out or failed)");
            if n == 0 {
                break;
            }
            expected.fill(&mut want[..n]);
            assert!(got[..n] == want[..n], "corrupted bytes after offset {total}");
            total += n;
            assert!(total <= bytes, "more bytes than sent");
        }
        (total, start.elapsed().as_secs_f64())
    });
    let client = from.spawn(move || {
        let mut conn = connect_within(addr);
        let mut source = Stream::new(0x5eed);
        let mut buf = vec![0u8; 1 << 16];
        let mut sent = 0;
        while sent < bytes {
            let n = buf.len().min(bytes - sent);
            source.fill(&mut buf[..n]);
            conn.write_all(&buf[..n]).expect("write");
            sent += n;
        }
        conn.shutdown(std::net::Shutdown::Write).unwrap();
    });
    client.join().expect("client thread");
    let (total, secs) = server.join().expect("server thread");
    assert_eq!(total, bytes);
    secs
}

/// Sends SIGTERM to `child` and waits up to `grace` for it to exit (then
/// SIGKILL). Returns its exit code, `None` if it had to be killed.
pub fn terminate(child: &mut std::process::Child, grace: Duration) -> Option<i32> {
    // `ip netns exec` execs the program, so the child's pid is the program's.
    // Safety: kill(2) on the pid of a child we have not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
