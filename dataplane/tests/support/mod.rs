//! Dataplane processes for the end-to-end tests; namespaces, veth pairs and
//! the checked transfer come from the lab's `tools/src/lab/netns.rs` (included by
//! path, so this crate does not depend on the tools crate).

#![allow(dead_code)]

#[path = "../../../tools/src/lab/netns.rs"]
mod netns;
pub use netns::*;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mycelium_dataplane::engine::counters::CounterValues;
use mycelium_dataplane::io::shm::read_all_counters;

/// A running `mycelium-dataplane`, stopped with SIGTERM (then SIGKILL) on drop.
#[derive(Debug)]
pub struct Dataplane {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub shm_dir: PathBuf,
}

pub fn shm_dir(tag: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/mycelium-test-{}-{tag}", std::process::id()))
}

/// Outcome of starting a dataplane.
pub enum Started {
    Running(Dataplane),
    Exited { code: Option<i32>, log: String },
}

impl Started {
    pub fn running(self) -> Dataplane {
        match self {
            Started::Running(d) => d,
            Started::Exited { code, log } => panic!("dataplane exited ({code:?}):\n{log}"),
        }
    }

    pub fn exited(self) -> (Option<i32>, String) {
        match self {
            Started::Running(d) => panic!("dataplane kept running:\n{}", d.log.lock().unwrap().join("\n")),
            Started::Exited { code, log } => (code, log),
        }
    }
}

impl Dataplane {
    /// Starts the binary in `ns` with `args` (plus `--shm-dir` for `tag`), and waits up to 10 s
    /// for it to report "dataplane running" or to exit. Without an `--engine` argument it runs
    /// the passthrough I/O test engine.
    pub fn start(ns: &Netns, tag: &str, args: &[&str]) -> Started {
        let dir = shm_dir(tag);
        let engine: &[&str] = if args.contains(&"--engine") { &[] } else { &["--engine", "passthrough"] };
        let mut child = ns
            .command(env!("CARGO_BIN_EXE_mycelium-dataplane"))
            .args(engine)
            .args(args)
            .arg("--shm-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mycelium-dataplane");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dataplane running") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if rx.try_recv().is_ok() {
                return Started::Running(Dataplane { child: Some(child), log, shm_dir: dir });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let text = log.lock().unwrap().join("\n");
                // Leave another run's directory (same tag, running) alone: only remove an unlocked one.
                if !dir.join("shard-0.counters").exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return Started::Exited { code: status.code(), log: text };
            }
            assert!(Instant::now() < deadline, "dataplane did not start in 10 s:\n{}", log.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits up to 5 s for a clean exit; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        terminate(&mut child, Duration::from_secs(5))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.shm_dir);
    }
}

pub fn summed(dp: &Dataplane) -> CounterValues {
    read_all_counters(&dp.shm_dir).expect("read counters").into_iter().map(|(_, v)| v).sum()
}
