//! Prometheus metrics: one `/metrics` endpoint (Prometheus text format
//! 0.0.4) on loopback, default `127.0.0.1:9990`.
//!
//! Nothing is counted on a hot path for this: at each scrape a custom
//! collector asks the daemon for its values ([`MetricsSource::sample`]) and
//! reads the dataplane's per-shard counters from shared memory
//! ([`CounterSource::read`], [`ShmCounters`] for the real files), then
//! renders. The names are in [`names`].
//!
//! # Driving it
//!
//! ```text
//! let metrics = metrics::start(&MetricsConfig::default(), Arc::new(daemon_view), Arc::new(ShmCounters::new(shm_dir)))?;
//! ...                      // serves GET /metrics on its own thread
//! drop(metrics);           // stops it
//! ```
//!
//! Transit bytes per source are bounded to the top `transit_top_n` sources
//! plus `other` ([`topn`]).

mod collector;
pub mod names;
pub mod topn;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mycelium_dataplane::engine::counters::CounterValues;

pub use collector::Metrics;

use crate::api::server::{HttpServer, Method, Reply, Request, ServeError};
use crate::link::LinkMetrics;

/// The metrics endpoint's default address.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9990);

/// Default number of named `source` series of `mycelium_transit_bytes_total`.
pub const DEFAULT_TRANSIT_TOP_N: usize = 10;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The daemon's values, read at scrape time. Called from the metrics
/// thread; should answer promptly.
pub trait MetricsSource: Send + Sync {
    /// Everything the daemon reports, at this moment.
    fn sample(&self) -> DaemonSample;
}

/// The dataplane's per-shard counters, read at scrape time.
pub trait CounterSource: Send + Sync {
    /// Every shard's values in shard order; an error when none can be read
    /// (the dataplane's metrics are then left out of the scrape).
    fn read(&self) -> Result<Vec<(usize, CounterValues)>, String>;
}

impl<F> CounterSource for F
where
    F: Fn() -> Result<Vec<(usize, CounterValues)>, String> + Send + Sync,
{
    fn read(&self) -> Result<Vec<(usize, CounterValues)>, String> {
        self()
    }
}

/// The real counters: the dataplane's `shard-<n>.counters` files in the
/// instance's shared-memory directory.
#[derive(Debug, Clone)]
pub struct ShmCounters {
    dir: PathBuf,
}

impl ShmCounters {
    /// Counters in `dir` (e.g. `/dev/shm/mycelium-<instance>`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ShmCounters { dir: dir.into() }
    }
}

impl CounterSource for ShmCounters {
    fn read(&self) -> Result<Vec<(usize, CounterValues)>, String> {
        mycelium_dataplane::io::shm::read_all_counters(&self.dir).map_err(|e| e.to_string())
    }
}

/// What the daemon reports at a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonSample {
    /// One entry per peer with traffic counters.
    pub peers: Vec<PeerSample>,
    /// Routes in the published snapshot.
    pub routes_selected: u64,
    /// Feasible routes kept ready.
    pub routes_fallback: u64,
    /// Selected-route changes since the daemon started.
    pub route_changes: u64,
    /// Generation of the last published snapshot (0: none).
    pub snapshot_generation: u64,
    /// Seconds since it was built (`None` before the first).
    pub snapshot_age_seconds: Option<f64>,
    /// Cumulative transit bytes per source (any number; bounded on export).
    pub transit_bytes: Vec<(String, u64)>,
}

/// One peer's counters and links.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerSample {
    /// The `peer` label: the peer's overlay address (stable, readable).
    pub peer: String,
    /// Bytes received from and sent to this peer (all its links).
    pub receive_bytes: u64,
    pub transmit_bytes: u64,
    pub links: Vec<LinkSample>,
}

/// One link's measurements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkSample {
    /// The `link` label: the link id.
    pub link: u32,
    /// Smoothed RTT; `None` (no series) before the first sample.
    pub rtt_seconds: Option<f64>,
    pub loss_ratio: f64,
    /// The capacity the cost uses (measured or prior), in bit/s; exported
    /// in bytes per second, the Prometheus base unit.
    pub bandwidth_bps: u64,
}

impl LinkSample {
    /// The metrics of link `id` from its measurement snapshot.
    pub fn from_metrics(id: u32, m: &LinkMetrics) -> Self {
        LinkSample {
            link: id,
            rtt_seconds: m.rtt.map(|d| d.as_secs_f64()),
            loss_ratio: m.loss_ratio,
            bandwidth_bps: m.capacity_bps,
        }
    }
}

/// Where and how `/metrics` listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Default [`DEFAULT_ADDR`].
    pub addr: SocketAddr,
    /// Listen on a non-loopback address too (default false: refused).
    pub allow_public: bool,
    /// Named sources of `mycelium_transit_bytes_total` (default 10).
    pub transit_top_n: usize,
    /// The `version` label of `mycelium_build_info`.
    pub version: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: DEFAULT_ADDR,
            allow_public: false,
            transit_top_n: DEFAULT_TRANSIT_TOP_N,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Starts `/metrics` on its own thread.
pub fn start(
    config: &MetricsConfig,
    daemon: Arc<dyn MetricsSource>,
    counters: Arc<dyn CounterSource>,
) -> Result<HttpServer, ServeError> {
    let metrics = Metrics::new(daemon, counters, config.transit_top_n, &config.version);
    let handler = move |req: Request| serve(&metrics, &req);
    HttpServer::start("metrics", config.addr, config.allow_public, 1, 0, Arc::new(handler))
}

fn serve(metrics: &Metrics, req: &Request) -> Reply {
    let path = req.url.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Reply::new(404, "text/plain; charset=utf-8", "not found: metrics are at /metrics\n");
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Reply {
            allow: Some("GET, HEAD"),
            ..Reply::new(405, "text/plain; charset=utf-8", "method not allowed\n")
        };
    }
    match metrics.render() {
        Ok(text) => Reply::new(200, CONTENT_TYPE, text),
        Err(e) => Reply::new(500, "text/plain; charset=utf-8", format!("rendering metrics failed: {e}\n")),
    }
}
