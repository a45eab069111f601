//! A deterministic mesh simulator for the route engine.
//!
//! N nodes, each a composition of the sans-IO [`Router`] and one sans-IO
//! link measurement engine per link ([`node::SimNode`]; real Hello/IHU
//! exchanges and probe trains over the emulated links), joined by emulated links (delay,
//! jitter, random and Gilbert-Elliott loss, bandwidth, up/down schedules;
//! [`link`]). Simulated time advances through a priority queue of events
//! (packet deliveries, node timers, link state changes), so a simulated
//! hour takes seconds. Everything random comes from one seed: the same
//! seed gives the same run, event for event.
//!
//! After every event, each route the event changed is followed hop by hop
//! and the run panics if a node is visited twice: loop freedom is checked
//! at every instant, not just at the end.
//!
//! ```text
//! let mut sim = Sim::new(Topology::square(LinkProps::with_delay(ms(10))), SimConfig::default());
//! sim.run_until(Duration::from_secs(10));
//! assert!(sim.all_pairs_reachable());
//! ```
//!
//! [`Router`]: mycelium_control::routing::Router

pub mod link;
pub mod node;
pub mod rng;
pub mod topology;
pub mod world;

pub use link::{LinkProps, Loss};
pub use topology::Topology;
pub use world::{Sim, SimConfig, node_key};
