//! The control socket: a Unix stream socket taking one JSON line per
//! request ([`Update`]) and answering one JSON line: `{"ok":true,...}` with
//! the settings now in force and the counters, or `{"ok":false,"error":..}`.
//!
//! ```text
//! $ echo '{"delay_ms":80,"loss":0.02}' | socat - UNIX-CONNECT:/run/emu-ab.sock
//! ```
//!
//! [`request`] is the client side, for mlab and tests.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::impairment::Impairment;
use super::relay::{DirStats, Relay};
use super::settings::Update;
use crate::sim::Loss;

/// A running control server; dropping it stops it and removes the socket.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path` (a stale socket there is replaced).
    pub fn start(path: &Path, relay: Arc<Relay>) -> io::Result<ControlServer> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("emu-control".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // A client that misbehaves only loses its own connection.
                        let _ = serve(stream, &relay);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(ControlServer { path: path.to_owned(), stop, thread: Some(thread) })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(stream: UnixStream, relay: &Relay) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines().take(1000) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = handle_line(&line, relay);
        writeln!(writer, "{reply}")?;
    }
    Ok(())
}

/// One request, one reply.
pub fn handle_line(line: &str, relay: &Relay) -> Value {
    match Update::parse(line) {
        Ok(u) => {
            let settings = relay.update(&u);
            let stats = relay.stats();
            let peers = relay.peers().map(|p| p.map(|p| p.to_string()));
            json!({
                "ok": true,
                "a_to_b": { "settings": settings_json(&settings[0]), "stats": stats_json(&stats[0]) },
                "b_to_a": { "settings": settings_json(&settings[1]), "stats": stats_json(&stats[1]) },
                "peer_a": peers[0],
                "peer_b": peers[1],
            })
        }
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    }
}

fn settings_json(s: &Impairment) -> Value {
    let mut v = json!({
        "delay_ms": s.delay.as_secs_f64() * 1e3,
        "jitter_ms": s.jitter.as_secs_f64() * 1e3,
        "rate_bps": s.rate_bps,
        "queue_bytes": s.queue_bytes,
        "up": s.up,
    });
    match s.loss {
        Loss::None => v["loss"] = json!(0.0),
        Loss::Random(p) => v["loss"] = json!(p),
        Loss::GilbertElliott { p, r, k, h } => v["gilbert"] = json!({ "p": p, "r": r, "k": k, "h": h }),
    }
    v
}

fn stats_json(s: &DirStats) -> Value {
    json!({
        "received": s.received,
        "sent": s.sent,
        "delivered_bytes": s.engine.delivered_bytes,
        "dropped_down": s.engine.dropped_down,
        "dropped_queue_full": s.engine.dropped_queue_full,
        "dropped_loss": s.engine.dropped_loss,
        "dropped_no_peer": s.dropped_no_peer,
        "dropped_oversize": s.dropped_oversize,
        "dropped_relay_full": s.dropped_relay_full,
        "send_errors": s.send_errors,
        "in_flight": s.in_flight,
    })
}

/// Client side: sends one line to the control socket at `path` and
/// returns the reply.
pub fn request(path: &Path, line: &str) -> io::Result<Value> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(stream, "{}", line.trim())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
