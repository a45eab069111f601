//! Scenario `multilink` (`tools/lab/scenarios/multilink.toml`): a and b are
//! joined by fiber (5 ms) and cellular (30 ms, 20 Mbit/s). A checked TCP
//! stream runs from a to b throughout:
//! 1. the traffic uses the fiber (next hop, and the emulators' packet
//!    counters over two seconds);
//! 2. the fiber goes down: the stream continues over cellular; the longest
//!    pause the receiver saw is the interruption (a goal, reported but
//!    not required: at most [`GOAL`]);
//! 3. the fiber comes back: the traffic moves back once the link has proved
//!    stable (reported from the restore to the move).

use std::time::{Duration, Instant};

use super::{Report, Run, ms};
use crate::emu::Update;
use crate::lab::{Lab, LabError};

/// The interruption the issue asks for at most.
pub const GOAL: Duration = Duration::from_millis(500);

/// The stream's rate, bytes a second.
const STREAM_RATE: u64 = 1 << 20;

/// Packets both directions of lab link `i` carried so far.
fn packets(lab: &Lab, i: usize) -> Result<u64, LabError> {
    let v = lab.link_stats(&lab.state().links[i])?;
    Ok(["a_to_b", "b_to_a"].iter().map(|d| v[d]["stats"]["sent"].as_u64().unwrap_or(0)).sum())
}

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("waiting until a reaches b over the fiber");
    let reached = s.lab().ping_until_reachable("a", "b", Duration::from_secs(40))?;
    r.figure("reachable_after_ms", ms(reached));
    let fiber = s.wait_for_hop("a", "b", Duration::from_secs(20), |h| h.class == "fiber")?;
    let back = s.wait_for_hop("b", "a", Duration::from_secs(5), |h| h.class == "fiber")?;
    r.check(
        "both ends select the fiber over the cellular link",
        fiber.is_some() && back.is_some(),
        format!("a -> b: {}; b -> a: {}", s.path("a", "b")?.join(" -> "), s.path("b", "a")?.join(" -> ")),
    );

    s.say("stream a -> b; counting packets on each link");
    let flow = s.lab().stream("a", "b", 7401, STREAM_RATE)?;
    let (fiber0, cell0) = (packets(s.lab(), 0)?, packets(s.lab(), 1)?);
    std::thread::sleep(Duration::from_secs(2));
    let on_fiber = packets(s.lab(), 0)?.saturating_sub(fiber0);
    let on_cell = packets(s.lab(), 1)?.saturating_sub(cell0);
    r.figure("packets_fiber_before", on_fiber);
    r.figure("packets_cellular_before", on_cell);
    r.check(
        "the stream's traffic runs on the fiber",
        on_fiber > 10 * on_cell.max(1),
        format!("{on_fiber} packets on the fiber, {on_cell} on cellular in 2 s"),
    );

    s.say("fiber down");
    let down = Update { up: Some(false), ..Update::default() };
    s.lab().set_link("a", "b", 0, &down)?;
    let cut = Instant::now();
    let moved = s.wait_for_hop("a", "b", Duration::from_secs(20), |h| h.class == "cellular")?;
    r.check(
        "a moves to the cellular link",
        moved.is_some(),
        moved.map_or("no move within 20 s".into(), |t| format!("after {} ms", t.as_millis())),
    );
    if moved.is_some() {
        r.figure("reroute_ms", ms(cut.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(3));
    let got = flow.received.load(std::sync::atomic::Ordering::Relaxed);

    s.say("fiber up again");
    let up = Update { up: Some(true), ..Update::default() };
    s.lab().set_link("a", "b", 0, &up)?;
    let restored = Instant::now();
    let returned = s.wait_for_hop("a", "b", Duration::from_secs(30), |h| h.class == "fiber")?;
    r.check(
        "the traffic moves back to the fiber once it proved stable",
        returned.is_some(),
        returned.map_or("still on cellular 30 s after the restore".into(), |t| format!("after {} ms", t.as_millis())),
    );
    if returned.is_some() {
        r.figure("moved_back_ms", ms(restored.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(2));
    let report = flow.try_finish();
    match report {
        Ok(f) => {
            r.check(
                "the stream continues across both moves with every byte checked",
                f.bytes > got,
                format!("{} bytes in {:.1} s", f.bytes, f.secs),
            );
            r.figure("interruption_ms", ms(f.longest_gap));
            r.goal(
                "the interruption is at most 500 ms",
                f.longest_gap <= GOAL,
                format!("longest pause {} ms", f.longest_gap.as_millis()),
            );
        }
        Err(e) => {
            r.check("the stream continues across both moves with every byte checked", false, e.to_string());
        }
    }
    Ok(())
}
