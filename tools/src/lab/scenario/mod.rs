//! Scripted scenarios (`mlab run NAME`): each brings up a lab from its
//! topology (`tools/lab/scenarios/NAME.toml`, built in), disturbs it, checks
//! what the mesh did, measures it, and tears the lab down:
//!
//! ```no_run
//! use mycelium_tools::lab::Options;
//! use mycelium_tools::lab::scenario::{self, ScenarioOptions};
//!
//! let opts = ScenarioOptions::new(Options::named("scen"), 1);
//! let report = scenario::run("latency", &opts, &mut std::io::stdout())?;
//! assert!(report.passed, "{}", report.failures());
//! # Ok::<(), mycelium_tools::lab::LabError>(())
//! ```
//!
//! [`run`] never leaves a lab behind: an error inside a scenario becomes the
//! report's `error` (the scenario fails) and the lab is still torn down.
//! Every wait is bounded. The scenarios, one file each: [`latency`],
//! [`loss`], [`bandwidth`], [`multilink`], [`churn`], [`geography`]; their
//! shared [`report`] type and the helpers here ([`Run`]).

pub mod bandwidth;
pub mod churn;
pub mod geography;
pub mod latency;
pub mod loss;
pub mod multilink;
pub mod report;

use std::io::Write;
use std::time::{Duration, Instant};

use mycelium_control::api::types::{LinkInfo, PeerInfo, RouteInfo};
use serde::de::DeserializeOwned;

pub use report::{Check, Report, Suite};

use super::{Hop, Lab, LabError, Options, Topology};
use crate::mctl::client::Client;

/// Every scenario, in the order `mlab run all` runs them.
pub const NAMES: [&str; 6] = ["latency", "loss", "bandwidth", "multilink", "geography", "churn"];

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    /// The lab (its name is reused by each scenario in turn).
    pub lab: Options,
    /// Seeds the random choices (churn's link changes).
    pub seed: u64,
    /// How long churn changes links.
    pub churn: Duration,
}

impl ScenarioOptions {
    /// Defaults: churn runs for 2 minutes.
    pub fn new(lab: Options, seed: u64) -> ScenarioOptions {
        ScenarioOptions { lab, seed, churn: Duration::from_secs(120) }
    }
}

/// The built-in topology of a scenario.
pub fn topology(name: &str) -> Option<&'static str> {
    Some(match name {
        "latency" => include_str!("../../../lab/scenarios/latency.toml"),
        "loss" => include_str!("../../../lab/scenarios/loss.toml"),
        "bandwidth" => include_str!("../../../lab/scenarios/bandwidth.toml"),
        "multilink" => include_str!("../../../lab/scenarios/multilink.toml"),
        "churn" => include_str!("../../../lab/scenarios/churn.toml"),
        "geography" => include_str!("../../../lab/scenarios/geography.toml"),
        _ => return None,
    })
}

/// Runs scenario `name`, writing its progress and report to `out`.
/// `Err` only for an unknown name or a bad built-in topology; everything
/// else that goes wrong fails the report.
pub fn run(name: &str, opts: &ScenarioOptions, out: &mut dyn Write) -> Result<Report, LabError> {
    let text = topology(name).ok_or_else(|| {
        LabError::Check(format!("no scenario {name:?}: expected one of {}, or all", NAMES.join(", ")))
    })?;
    let topo = Topology::parse(text)?;
    let start = Instant::now();
    let mut report = Report::new(name, opts.seed);
    let _ = writeln!(out, "[   0.0s] scenario {name}: building {} nodes, {} links", topo.nodes.len(), topo.links.len());
    match Lab::up(&topo, &opts.lab) {
        Err(e) => report.error = Some(format!("the lab did not come up: {e}")),
        Ok(lab) => {
            let mut s = Run { lab, out: &mut *out, start };
            let outcome = match name {
                "latency" => latency::run(&mut s, &mut report),
                "loss" => loss::run(&mut s, &mut report),
                "bandwidth" => bandwidth::run(&mut s, &mut report),
                "multilink" => multilink::run(&mut s, &mut report),
                "churn" => churn::run(&mut s, &mut report, opts),
                _ => geography::run(&mut s, &mut report),
            };
            if let Err(e) = outcome {
                report.error = Some(e.to_string());
            }
            if report.error.is_some() || report.checks.iter().any(|c| !c.passed) {
                match keep_logs(&s.lab, name) {
                    Ok(dir) => report.figure("logs", dir.display().to_string()),
                    Err(e) => s.say(&format!("cannot keep the logs: {e}")),
                }
            }
            s.say("tearing down");
            if let Err(e) = s.lab.down() {
                report.check("teardown leaves nothing behind", false, e.to_string());
            }
        }
    }
    report.finish(start.elapsed().as_secs_f64());
    let _ = report.print(out);
    Ok(report)
}

/// Copies the lab's node and emulator logs to
/// `<temp dir>/mlab-scenario-<name>-<lab>/` (replacing an older copy), so a
/// failed scenario can be looked into after the teardown.
fn keep_logs(lab: &Lab, name: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("mlab-scenario-{name}-{}", lab.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&lab.state().dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::copy(&path, dir.join(entry.file_name()))?;
        }
    }
    Ok(dir)
}

/// A scenario's lab and progress output.
pub struct Run<'a> {
    lab: Lab,
    out: &'a mut dyn Write,
    start: Instant,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("lab", &self.lab.name()).field("start", &self.start).finish_non_exhaustive()
    }
}

impl Run<'_> {
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// A progress line.
    pub fn say(&mut self, what: &str) {
        let _ = writeln!(self.out, "[{:6.1}s] {what}", self.start.elapsed().as_secs_f64());
        let _ = self.out.flush();
    }

    /// Polls `f` every `every` until it holds or `within` has passed;
    /// returns how long it took, `None` if it never held.
    pub fn wait_for(
        &self,
        within: Duration,
        every: Duration,
        mut f: impl FnMut(&Lab) -> Result<bool, LabError>,
    ) -> Result<Option<Duration>, LabError> {
        let start = Instant::now();
        loop {
            if f(self.lab())? {
                return Ok(Some(start.elapsed()));
            }
            if start.elapsed() >= within {
                return Ok(None);
            }
            std::thread::sleep(every);
        }
    }

    /// Waits until `from`'s next hop to `to` satisfies `want`.
    pub fn wait_for_hop(
        &self,
        from: &str,
        to: &str,
        within: Duration,
        want: impl Fn(&Hop) -> bool,
    ) -> Result<Option<Duration>, LabError> {
        self.wait_for(within, Duration::from_millis(50), |lab| Ok(lab.next_hop(from, to)?.is_some_and(|h| want(&h))))
    }

    /// The nodes on the path from `from` to `to`, as `name(class)`.
    pub fn path(&self, from: &str, to: &str) -> Result<Vec<String>, LabError> {
        super::demo::path(self.lab(), from, to)
    }

    /// Mean round trip of `count` pings (`None`: no answer).
    pub fn rtt_ms(&self, from: &str, to: &str, count: u32) -> Result<Option<f64>, LabError> {
        Ok(self.lab().ping(from, to, count)?.avg_rtt_ms)
    }

    /// `node`'s measured links to `peer`, each with the lab link it runs
    /// over (found through the next hops of `node`'s routes to `peer`).
    pub fn links_to(&self, node: &str, peer: &str) -> Result<Vec<(Option<usize>, LinkInfo)>, LabError> {
        let lab = self.lab();
        let key = lab.node(peer)?.public_key.clone();
        let subnet = lab.node(peer)?.subnet.clone();
        let peers: Vec<PeerInfo> = api_get(lab, node, "/api/v1/peers", &[])?;
        let routes: Vec<RouteInfo> = lab.routes_in(node, "all")?;
        let lab_link = |id: u32| {
            routes
                .iter()
                .filter(|r| r.prefix == subnet && r.next_hop.link == Some(id))
                .find_map(|r| lab.hop(node, r))
                .map(|h| h.link)
        };
        Ok(peers
            .into_iter()
            .filter(|p| p.public_key == key)
            .flat_map(|p| p.links)
            .map(|l| (lab_link(l.id), l))
            .collect())
    }
}

/// `GET path` from `node`'s admin API.
pub fn api_get<T: DeserializeOwned + Send + 'static>(
    lab: &Lab,
    node: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<T, LabError> {
    let api = lab.node(node)?.api.clone();
    let (path, query): (String, Vec<(String, String)>) =
        (path.to_owned(), query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    let reply = lab
        .netns(node)?
        .spawn_checked(move || {
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Client::new(&api).get::<T>(&path, &q)
        })
        .join();
    match reply {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(LabError::Api(node.to_owned(), format!("{e:#}"))),
        Ok(Err(e)) => Err(LabError::Api(node.to_owned(), format!("cannot enter its namespace: {e}"))),
        Err(_) => Err(LabError::Api(node.to_owned(), "the API client thread panicked".into())),
    }
}

/// Milliseconds, for figures.
pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Megabits a second from bytes over seconds (0 for no time).
pub fn mbit(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e6 } else { 0.0 }
}

/// Rounds to two decimals (stable, readable JSON).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_topology_that_parses() {
        for name in NAMES {
            let text = topology(name).unwrap_or_else(|| panic!("{name} has a topology"));
            let topo = Topology::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(topo.nodes.len() >= 2, "{name}");
        }
        assert!(topology("nonsense").is_none());
    }

    #[test]
    fn an_unknown_scenario_is_refused_with_the_list() {
        let opts = ScenarioOptions::new(Options::named("x"), 1);
        let e = run("nonsense", &opts, &mut Vec::new()).expect_err("refused").to_string();
        assert!(e.contains("latency") && e.contains("churn"), "{e}");
    }

    #[test]
    fn figures_are_in_readable_units() {
        assert_eq!(mbit(1_250_000, 1.0), 10.0);
        assert_eq!(mbit(1, 0.0), 0.0);
        assert_eq!(round2(1.23456), 1.23);
        assert_eq!(ms(Duration::from_micros(1_500)), 1);
    }
}
