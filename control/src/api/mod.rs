//! The local admin API: HTTP + JSON on loopback, for `mctl` and scripts.
//!
//! # Driving it
//!
//! The daemon implements [`AdminState`] over its own state (the engine loop
//! owns the state; an implementation typically asks the loop over a channel
//! and waits briefly, answering [`ApiError::Unavailable`] on a timeout), then
//! starts the server once at start-up:
//!
//! ```text
//! let api = api::start(&ApiConfig::default(), Arc::new(my_state))?;   // 127.0.0.1:8990
//! ...                                                                   // serves on its own threads
//! drop(api);                                                            // stops and joins them
//! ```
//!
//! # Endpoints (all JSON, camelCase; documents in [`types`])
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/api/v1/node` | [`types::NodeInfo`] |
//! | GET | `/api/v1/peers` | list of [`types::PeerInfo`] |
//! | POST | `/api/v1/peers` | body [`types::PeerRequest`]; 201 with the same |
//! | DELETE | `/api/v1/peers?endpoint=udp://host:port` | 200 with a [`types::PeerRequest`] |
//! | GET | `/api/v1/routes?state=selected\|fallback\|all` | list of [`types::RouteInfo`] (default `all`) |
//! | GET | `/api/v1/routes/lookup?address=ADDR` | [`types::RouteLookup`] |
//! | GET | `/api/v1/counters` | [`types::Counters`] |
//! | GET | `/api/v1/graph` | [`types::Graph`] |
//!
//! Errors are `{"error": "..."}` with 400 (bad input), 401 (a change without
//! the token, see below), 404 (no such path or peer), 405 (wrong method, with
//! `Allow`), 409 (peer already there), 413 (body over [`MAX_BODY`]), 500 and
//! 503 (the daemon could not answer). No request, however malformed, panics
//! the server.
//!
//! # Who may change things
//!
//! Loopback TCP is open to every local user. Reading is harmless, but with
//! [`ApiConfig::token`] set, `POST` and `DELETE` need the header
//! `Authorization: Bearer <token>`. The daemon makes a random token at start
//! and writes it to a file only its user can read ([`TOKEN_FILE`] in the
//! state directory); `mctl` sends it when it can read that file, so changes
//! need the service user or root.

#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod query;
mod router;
pub mod server;
pub mod token;
pub mod types;

#[cfg(test)]
mod tests;

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;

use mycelium_dataplane::engine::counters::CounterValues;

pub use router::{authorize, handle};
pub use server::{HttpServer, ServeError};
use types::{Graph, NodeInfo, PeerInfo, RouteInfo, RouteLookup};

/// The admin API's default address.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8990);

/// The largest request body accepted (a peer request is under 300 bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// The token file's name, in the daemon's state directory
/// (`/var/lib/mycelium/api.token` under systemd).
pub const TOKEN_FILE: &str = "api.token";

/// The longest endpoint string accepted.
pub const MAX_ENDPOINT_LEN: usize = 512;

/// What the daemon answers the API with. Called from the API's worker
/// threads, concurrently; every method should answer promptly.
pub trait AdminState: Send + Sync {
    /// This node.
    fn node(&self) -> Result<NodeInfo, ApiError>;
    /// Every peer, configured or discovered, sorted by endpoint.
    fn peers(&self) -> Result<Vec<PeerInfo>, ApiError>;
    /// Every route, selected and fallback, sorted by prefix then state (the
    /// API filters by `state`).
    fn routes(&self) -> Result<Vec<RouteInfo>, ApiError>;
    /// The route the daemon would choose now for `address`, the other
    /// candidates and why each lost.
    fn lookup(&self, address: Ipv6Addr) -> Result<RouteLookup, ApiError>;
    /// Every dataplane shard's counters, in shard order (what
    /// `mycelium_dataplane::io::shm::read_all_counters` gives).
    fn counters(&self) -> Result<Vec<(usize, CounterValues)>, ApiError>;
    /// What the node knows of the mesh.
    fn graph(&self) -> Result<Graph, ApiError>;
    /// Adds a peer by endpoint (`udp://host:port`, checked by the daemon:
    /// [`ApiError::BadRequest`] when it does not parse, [`ApiError::Conflict`]
    /// when the peer exists).
    fn add_peer(&self, endpoint: &str) -> Result<(), ApiError>;
    /// Removes a peer by endpoint ([`ApiError::NotFound`] when there is none).
    fn remove_peer(&self, endpoint: &str) -> Result<(), ApiError>;
}

/// Why a request failed; each variant is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: it exists already.
    #[error("{0}")]
    Conflict(String),
    /// 503: the daemon could not answer now (its loop is busy or stopping).
    #[error("{0}")]
    Unavailable(String),
    /// 500: something went wrong inside the daemon.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }
}

/// Where and how the admin API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// Default [`DEFAULT_ADDR`].
    pub addr: SocketAddr,
    /// Listen on a non-loopback address too (default false: refused).
    pub allow_public: bool,
    /// Worker threads (default 2, so one slow client does not block `mctl`).
    pub workers: usize,
    /// When set, `POST` and `DELETE` need `Authorization: Bearer <token>`
    /// (default `None`: anyone who can connect may change peers).
    pub token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { addr: DEFAULT_ADDR, allow_public: false, workers: 2, token: None }
    }
}

/// Starts the admin API on its own threads.
pub fn start(config: &ApiConfig, state: Arc<dyn AdminState>) -> Result<HttpServer, ServeError> {
    let token = config.token.clone();
    let handler = move |req: server::Request| match authorize(token.as_deref(), &req) {
        Ok(()) => handle(&*state, req),
        Err(reply) => reply,
    };
    HttpServer::start("admin-api", config.addr, config.allow_public, config.workers, MAX_BODY, Arc::new(handler))
}
