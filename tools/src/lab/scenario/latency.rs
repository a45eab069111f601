//! Scenario `latency` (`tools/lab/scenarios/latency.toml`): a reaches d over
//! one 300 ms satellite hop or three 5 ms fiber hops. Checks that the fiber
//! path is selected; then, with a checked TCP stream running (so the links
//! on the path send fast hellos), raises every fiber hop to 200 ms and
//! checks that the route moves to the satellite, reporting how long that
//! took from the change.

use std::time::{Duration, Instant};

use super::{Report, Run, ms, round2};
use crate::emu::Update;
use crate::lab::LabError;

/// The stream that keeps the path busy, bytes a second.
const STREAM_RATE: u64 = 256 << 10;

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("waiting until a reaches d");
    let reached = s.lab().ping_until_reachable("a", "d", Duration::from_secs(40))?;
    r.figure("reachable_after_ms", ms(reached));

    s.say("waiting for the 3 fiber hops to be selected over the satellite");
    let fiber = s.wait_for_hop("a", "d", Duration::from_secs(30), |h| h.neighbour == "b")?;
    let path = s.path("a", "d")?;
    r.check(
        "a reaches d over the three 5 ms fiber hops, not the 300 ms satellite",
        fiber.is_some(),
        format!("path {}", path.join(" -> ")),
    );
    if let Some(t) = fiber {
        r.figure("fiber_selected_after_ms", ms(t));
    }
    r.figure("path_before", path);
    if let Some(rtt) = s.rtt_ms("a", "d", 5)? {
        r.figure("rtt_before_ms", round2(rtt));
    }

    s.say("stream a -> d; raising every fiber hop to 200 ms");
    let flow = s.lab().stream("a", "d", 7101, STREAM_RATE)?;
    std::thread::sleep(Duration::from_secs(2));
    let slow = Update { delay_ms: Some(200.0), ..Update::default() };
    let changed = Instant::now();
    for (x, y) in [("a", "b"), ("b", "c"), ("c", "d")] {
        s.lab().set_link(x, y, 0, &slow)?;
    }
    let moved = s.wait_for_hop("a", "d", Duration::from_secs(30), |h| h.neighbour == "d" && h.class == "satellite")?;
    let took = moved.map(|_| changed.elapsed());
    let path = s.path("a", "d")?;
    r.check(
        "with 200 ms fiber hops (600 ms in all) the route moves to the 300 ms satellite",
        took.is_some(),
        match took {
            Some(t) => format!("moved {} ms after the change: {}", t.as_millis(), path.join(" -> ")),
            None => format!("still {} after 30 s", path.join(" -> ")),
        },
    );
    if let Some(t) = took {
        r.figure("route_moved_after_ms", ms(t));
    }
    r.figure("path_after", path);
    std::thread::sleep(Duration::from_secs(2));
    if let Some(rtt) = s.rtt_ms("a", "d", 3)? {
        r.figure("rtt_after_ms", round2(rtt));
    }
    let flow = flow.try_finish();
    r.check(
        "the stream survives the move with every byte checked",
        flow.is_ok(),
        match &flow {
            Ok(f) => format!("{} bytes, longest pause {} ms", f.bytes, f.longest_gap.as_millis()),
            Err(e) => e.to_string(),
        },
    );
    if let Ok(f) = flow {
        r.figure("stream_longest_pause_ms", ms(f.longest_gap));
    }
    Ok(())
}
