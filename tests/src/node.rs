//! A real `myceliumd` in a network namespace, stopped (SIGTERM, then SIGKILL)
//! and cleaned up on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// A workspace binary next to the test executable (target/<profile>/NAME).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo test --workspace --all-targets)",
        path.display()
    );
    path
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile_dir::Dir,
    pub instance: String,
    pub ns: String,
}

/// A temporary directory removed on drop (no dependency needed for this).
pub mod tempfile_dir {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("mycelium-test-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create test directory");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Node {
    /// Starts `myceliumd` in `ns` with its key file at `<dir>/node.key`
    /// (created if absent, or written from `secret`), LAN discovery off, and
    /// `args` appended. Waits up to 10 s for it to report it is running.
    pub fn start(ns: &Netns, tag: &str, secret: Option<[u8; 32]>, args: &[&str]) -> Node {
        let dir = tempfile_dir::Dir::new(tag);
        let key_file = dir.path().join("node.key");
        if let Some(secret) = secret {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&key_file).unwrap();
            std::io::Write::write_all(&mut f, &secret).unwrap();
        }
        let instance = format!("t{}{tag}", std::process::id());
        let mut child = ns
            .command(binary("myceliumd").to_str().unwrap())
            .env("MYCELIUM_DATAPLANE", binary("mycelium-dataplane"))
            .env("NO_COLOR", "1")
            .args(["--key-file", key_file.to_str().unwrap(), "--instance", &instance])
            .args(["--tun-name", &format!("myc{}{tag}", std::process::id() % 10_000), "--lan-discovery=false"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn myceliumd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (sink, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("myceliumd running") {
                        let _ = tx.send(());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let node = Node { child: Some(child), log, dir, instance, ns: ns.name.clone() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while rx.try_recv().is_err() {
            assert!(Instant::now() < deadline, "myceliumd did not start in 10 s:\n{}", node.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// Everything it printed so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The node's overlay address, from the line it prints at start.
    pub fn address(&self) -> String {
        let log = self.log_text();
        let line = log.lines().find(|l| l.starts_with("mycelium node ")).expect("the start-up line");
        line.split_whitespace().nth(2).expect("address").to_owned()
    }

    /// The node's public key, from the same line.
    pub fn public_key(&self) -> String {
        let log = self.log_text();
        let line = log.lines().find(|l| l.starts_with("mycelium node ")).expect("the start-up line");
        line.rsplit(' ').next().unwrap().trim_end_matches(')').to_owned()
    }

    /// Sends SIGTERM and waits up to 10 s; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // Safety: kill(2) on the pid of a child we have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
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
}

impl Drop for Node {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(format!("/dev/shm/mycelium-{}", self.instance));
    }
}
