//! [`HttpServer`]: a small blocking HTTP server on its own worker threads
//! (tiny_http), shared by the admin API and `/metrics`.
//!
//! The server refuses a non-loopback address unless the caller passes
//! `allow_public`. Each worker takes one request at a time, reads at most
//! `max_body` bytes of body, calls the handler (a plain function of a
//! [`Request`] to a [`Reply`], so the routing is testable without sockets)
//! and writes the reply. Dropping the server (or [`HttpServer::shutdown`])
//! stops and joins the workers.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not loopback and public listening was not allowed.
    #[error(
        "{name}: refusing to listen on {addr}, which is not a loopback address \
         (allow it explicitly in the config if this is really wanted)"
    )]
    NotLoopback {
        /// Which server.
        name: &'static str,
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding failed (address in use, no permission, ...).
    #[error("{name}: cannot listen on {addr}: {reason}")]
    Bind {
        /// Which server.
        name: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason.
        reason: String,
    },
    /// A worker thread could not be started.
    #[error("{name}: cannot start a thread: {source}")]
    Thread {
        /// Which server.
        name: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// HTTP methods the handlers tell apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    /// Anything else, by name.
    Other(String),
}

/// The request a handler sees.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The request target (`/path?query`), as sent.
    pub url: String,
    /// The body, read up to the server's limit.
    pub body: Result<Vec<u8>, BodyError>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// Why a request body is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the server's limit (answer 413).
    TooLarge,
    /// The client stopped sending or the body was malformed (answer 400).
    Unreadable,
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Reply {
    /// A reply with a body of `content_type`.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply { status, content_type, body: body.into(), allow: None }
    }
}

/// A request handler.
pub type Handler = dyn Fn(Request) -> Reply + Send + Sync;

/// A running server; stops when dropped.
pub struct HttpServer {
    name: &'static str,
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").field("name", &self.name).field("addr", &self.addr).finish()
    }
}

impl HttpServer {
    /// Binds `addr` and starts `workers` threads (at least one) named
    /// `name`, each serving requests with `handler`.
    pub fn start(
        name: &'static str,
        addr: SocketAddr,
        allow_public: bool,
        workers: usize,
        max_body: usize,
        handler: Arc<Handler>,
    ) -> Result<HttpServer, ServeError> {
        if !addr.ip().is_loopback() && !allow_public {
            return Err(ServeError::NotLoopback { name, addr });
        }
        let server =
            tiny_http::Server::http(addr).map_err(|e| ServeError::Bind { name, addr, reason: e.to_string() })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let mut this = HttpServer {
            name,
            addr: bound,
            server: Arc::new(server),
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
        };
        for i in 0..workers.max(1) {
            let (server, stop, handler) = (this.server.clone(), this.stop.clone(), handler.clone());
            let worker = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(&server, &stop, max_body, &*handler))
                .map_err(|source| ServeError::Thread { name, source })?;
            this.workers.push(worker);
        }
        tracing::info!(server = name, addr = %bound, "listening");
        Ok(this)
    }

    /// The bound address (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the workers and waits for them (a request in progress finishes).
    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn serve(server: &tiny_http::Server, stop: &AtomicBool, max_body: usize, handler: &Handler) {
    while !stop.load(Ordering::SeqCst) {
        // An error is either our unblock (then `stop` is set) or a failed
        // accept, after which serving goes on.
        let Ok(mut request) = server.recv() else { continue };
        let method = match request.method() {
            tiny_http::Method::Get => Method::Get,
            tiny_http::Method::Head => Method::Head,
            tiny_http::Method::Post => Method::Post,
            tiny_http::Method::Delete => Method::Delete,
            other => Method::Other(other.as_str().to_owned()),
        };
        let authorization =
            request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_owned());
        let body = read_body(&mut request, max_body);
        let req = Request { method, url: request.url().to_owned(), body, authorization };
        let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(req))) {
            Ok(reply) => reply,
            Err(_) => {
                tracing::error!("request handler panicked");
                Reply::new(500, "application/json", &b"{\"error\":\"internal error\"}"[..])
            }
        };
        let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], reply.content_type.as_bytes()) {
            response.add_header(h);
        }
        if let Some(allow) = reply.allow
            && let Ok(h) = tiny_http::Header::from_bytes(&b"Allow"[..], allow.as_bytes())
        {
            response.add_header(h);
        }
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "writing a reply failed");
        }
    }
}

/// Reads the body, refusing more than `max` bytes (without reading them
/// when the declared length already says so).
fn read_body(request: &mut tiny_http::Request, max: usize) -> Result<Vec<u8>, BodyError> {
    if request.body_length().is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    match request.as_reader().take(limit).read_to_end(&mut body) {
        Ok(_) if body.len() <= max => Ok(body),
        Ok(_) => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}
