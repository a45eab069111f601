//! Scenario `geography` (`tools/lab/scenarios/geography.toml`): a
//! (Amsterdam) reaches d (Paris) through b (Brussels, about 440 km in all)
//! or through c (Reykjavik, about 4200 km). The links are emulated without
//! delay, so the round trips measured say nothing about distance (and are
//! implausibly short for it): the nodes' positions are the only signal.
//! Once both paths are up end to end (a path that comes up first carries
//! the only route there is, whatever its length), a must go through b; the
//! selection is then sampled for [`OBSERVE`] and must not change.
//!
//! In the lab a link comes up with its first RTT sample already taken (the
//! IHU that proves it rides with the hellos), so "before any measurement"
//! is "before any measurement that could be believed": the great-circle
//! RTT at fiber speed stands in for each link.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Report, Run, ms, round2};
use crate::lab::LabError;

/// How long the selection is watched after the choice.
const OBSERVE: Duration = Duration::from_secs(5);
/// How long after both paths are up the choice is read.
const SETTLE: Duration = Duration::from_millis(500);

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("watching for a's first route to d, and for both paths to be up");
    let start = Instant::now();
    let (mut first, mut both_up) = (None, None);
    while both_up.is_none() && start.elapsed() < Duration::from_secs(40) {
        if first.is_none()
            && let Some(h) = s.lab().next_hop("a", "d")?
        {
            first = Some((h.neighbour, ms(start.elapsed())));
        }
        // The choice is only a choice once both paths are up end to end: a
        // path whose links come up first carries the only route there is,
        // whatever its length.
        let mut up = true;
        for (x, y) in [("a", "b"), ("b", "d"), ("a", "c"), ("c", "d")] {
            up &= s.links_to(x, y)?.iter().any(|(_, l)| l.state == "up" && l.cost != u16::MAX);
        }
        if up {
            both_up = Some(ms(start.elapsed()));
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some((via, after)) = first {
        r.figure("first_route_after_ms", after);
        r.figure("first_via", via);
    }
    let Some(both_up) = both_up else {
        r.check("both paths come up", false, "not within 40 s");
        return Ok(());
    };
    r.figure("both_paths_up_after_ms", both_up);
    // An update takes a hop or two to arrive after the last link is up.
    std::thread::sleep(SETTLE);
    let decided = s.lab().next_hop("a", "d")?;
    r.check(
        "with both paths up, a routes through Brussels, the geographically shorter one",
        decided.as_ref().is_some_and(|h| h.neighbour == "b"),
        match &decided {
            Some(h) => format!("via {} (metric {})", h.neighbour, h.metric),
            None => "no route".to_owned(),
        },
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
