//! Scenario `geography` (`tools/lab/scenarios/geography.toml`): a
//! (Amsterdam) reaches d (Paris) through b (Brussels, about 440 km in all)
//! or through c (Reykjavik, about 4200 km). The links are emulated without
//! delay, so the round trips measured say nothing about distance (and are
//! implausibly short for it): the nodes' positions are the only signal.
//! From the first selected route on, a must go through b; the selection is
//! then sampled for [`OBSERVE`] and must not change.
//!
//! In the lab a link comes up with its first RTT sample already taken (the
//! IHU that proves it rides with the hellos), so "before any measurement"
//! is "before any measurement that could be believed": the great-circle
//! RTT at fiber speed stands in for each link.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Report, Run, ms, round2};
use crate::lab::LabError;

/// How long the selection is watched after the first route.
const OBSERVE: Duration = Duration::from_secs(5);

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("watching for a's first route to d");
    let start = Instant::now();
    let mut first = None;
    while first.is_none() && start.elapsed() < Duration::from_secs(40) {
        first = s.lab().next_hop("a", "d")?;
        if first.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let Some(first) = first else {
        r.check("a has a route to d", false, "none within 40 s");
        return Ok(());
    };
    r.figure("first_route_after_ms", ms(start.elapsed()));
    r.figure("first_via", first.neighbour.clone());
    r.check(
        "a's first route to d goes through Brussels, the geographically shorter path",
        first.neighbour == "b",
        format!("first route via {} (metric {})", first.neighbour, first.metric),
    );

    let (mut samples, mut via_b) = (0u32, 0u32);
    let watch = Instant::now();
    while watch.elapsed() < OBSERVE {
        samples += 1;
        via_b += u32::from(s.lab().next_hop("a", "d")?.is_some_and(|h| h.neighbour == "b"));
        std::thread::sleep(Duration::from_millis(100));
    }
    r.check(
        "the short path stays selected",
        via_b == samples,
        format!("{via_b} of {samples} samples over {} s via b", OBSERVE.as_secs()),
    );
    r.figure("path", s.path("a", "d")?);
    let mut links = Vec::new();
    for peer in ["b", "c"] {
        for (_, info) in s.links_to("a", peer)? {
            links.push(json!({
                "link": format!("a-{peer}"),
                "measured_rtt_ms": info.rtt_ms.map(round2),
                "cost": info.cost,
            }));
        }
    }
    r.figure("links", links);
    let reached = s.lab().ping_until_reachable("a", "d", Duration::from_secs(20))?;
    r.figure("ping_after_ms", ms(reached));
    Ok(())
}
