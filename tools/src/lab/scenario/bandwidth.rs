//! Scenario `bandwidth` (`tools/lab/scenarios/bandwidth.toml`): two links of
//! equal latency and class join a and b, the first limited to 5 Mbit/s,
//! the second to 200 Mbit/s. Idle links measure their capacity with probe
//! trains; the 200 Mbit/s link must be selected. A full-speed TCP stream
//! then checks it: its goodput must exceed what the slow link could carry.
//! Figures: each link's capacity estimate and cost as a saw them.

use std::time::Duration;

use serde_json::json;

use super::{Report, Run, mbit, ms, round2};
use crate::lab::LabError;

/// The slow link's rate, bit/s: a goodput above it proves the fast link.
const SLOW_BPS: f64 = 5e6;

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("waiting until a reaches b");
    let reached = s.lab().ping_until_reachable("a", "b", Duration::from_secs(40))?;
    r.figure("reachable_after_ms", ms(reached));

    s.say("waiting for the 200 Mbit/s link to be selected");
    let fast = s.wait_for_hop("a", "b", Duration::from_secs(40), |h| h.index == 1)?;
    let hop = s.lab().next_hop("a", "b")?;
    r.check(
        "a selects the 200 Mbit/s link over the 5 Mbit/s one",
        fast.is_some(),
        match &hop {
            Some(h) => format!("a-b#{} ({} Mbit/s), metric {}", h.index, [5, 200][h.index.min(1)], h.metric),
            None => "no route".into(),
        },
    );
    if let Some(t) = fast {
        r.figure("fast_selected_after_ms", ms(t));
    }
    let mut links = Vec::new();
    for (link, info) in s.links_to("a", "b")? {
        let index = link.map(|l| s.lab().state().links[l].index);
        links.push(json!({
            "link": index.map_or("a-b (no route uses it)".to_owned(), |i| format!("a-b#{i}")),
            "capacity_mbit": info.bandwidth_bps.map(|b| round2(b as f64 / 1e6)),
            "rtt_ms": info.rtt_ms.map(round2),
            "cost": info.cost,
        }));
    }
    r.figure("links", links);

    s.say("TCP stream a -> b at full speed for 4 s");
    let flow = s.lab().stream("a", "b", 7301, u64::MAX / 4)?;
    std::thread::sleep(Duration::from_secs(4));
    let during = s.lab().next_hop("a", "b")?;
    let flow = flow.try_finish();
    match flow {
        Ok(f) => {
            let goodput = mbit(f.bytes, f.secs);
            r.figure("goodput_mbit", round2(goodput));
            r.check(
                "the stream's goodput exceeds the 5 Mbit/s link (it runs on the fast one)",
                goodput * 1e6 > SLOW_BPS * 1.5,
                format!(
                    "{goodput:.1} Mbit/s, every byte checked, over a-b#{}",
                    during.map_or("?".into(), |h| h.index.to_string())
                ),
            );
        }
        Err(e) => {
            r.check("a full-speed TCP stream delivers every byte", false, e.to_string());
        }
    }
    Ok(())
}
