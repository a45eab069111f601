//! Scenario `loss` (`tools/lab/scenarios/loss.toml`): a reaches b directly
//! over 20 ms with 5 % loss each way, or through c over a clean 2 x 15 ms.
//! A light stream keeps the links busy (fast hellos, so loss shows within
//! seconds); the clean path must be selected and stay selected (sampled
//! for [`OBSERVE`]); then a TCP stream at full speed over it reports its
//! goodput. Figures include what a measured on its direct link.

use std::time::{Duration, Instant};

use super::{Report, Run, mbit, ms, round2};
use crate::lab::LabError;

/// How long the selection is watched once the clean path is chosen.
const OBSERVE: Duration = Duration::from_secs(10);

/// The share of samples that must show the clean path.
const CLEAN_SHARE: f64 = 0.9;

/// How long the goodput stream runs.
const GOODPUT: Duration = Duration::from_secs(5);

pub fn run(s: &mut Run<'_>, r: &mut Report) -> Result<(), LabError> {
    s.say("waiting until a reaches b");
    let reached = s.lab().ping_until_reachable("a", "b", Duration::from_secs(40))?;
    r.figure("reachable_after_ms", ms(reached));

    s.say("light stream a -> b; waiting for the clean path through c");
    let light = s.lab().stream("a", "b", 7201, 128 << 10)?;
    let clean = s.wait_for_hop("a", "b", Duration::from_secs(30), |h| h.neighbour == "c")?;
    r.check(
        "a selects the clean path through c over the direct link with 5 % loss",
        clean.is_some(),
        format!("path {}", s.path("a", "b")?.join(" -> ")),
    );
    if let Some(t) = clean {
        r.figure("clean_selected_after_ms", ms(t));
    }

    s.say(&format!("watching the selection for {} s", OBSERVE.as_secs()));
    let (mut samples, mut via_c) = (0u32, 0u32);
    let start = Instant::now();
    while start.elapsed() < OBSERVE {
        samples += 1;
        via_c += u32::from(s.lab().next_hop("a", "b")?.is_some_and(|h| h.neighbour == "c"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let share = f64::from(via_c) / f64::from(samples.max(1));
    r.figure("clean_share", round2(share));
    r.check(
        "the clean path stays selected",
        share >= CLEAN_SHARE,
        format!("{via_c} of {samples} samples over {} s went through c", OBSERVE.as_secs()),
    );
    if let Some((_, info)) = s.links_to("a", "b")?.first() {
        r.figure("direct_loss_ratio", round2(info.loss_ratio));
        r.figure("direct_etx", info.etx.map_or(serde_json::Value::Null, |e| round2(e).into()));
        r.figure("direct_cost", info.cost);
    }
    if let Some(h) = s.lab().next_hop("a", "b")? {
        r.figure("selected_metric", h.metric);
    }
    light.try_finish().map_err(|e| LabError::Check(format!("the light stream failed: {e}")))?;

    s.say(&format!("TCP stream a -> b at full speed for {} s", GOODPUT.as_secs()));
    let path = s.path("a", "b")?;
    let flow = s.lab().stream("a", "b", 7202, u64::MAX / 4)?;
    std::thread::sleep(GOODPUT);
    let flow = flow.try_finish();
    r.check(
        "a full-speed TCP stream over the chosen path delivers every byte",
        flow.is_ok(),
        match &flow {
            Ok(f) => format!("{} bytes in {:.1} s over {}", f.bytes, f.secs, path.join(" -> ")),
            Err(e) => e.to_string(),
        },
    );
    if let Ok(f) = flow {
        r.figure("goodput_mbit", round2(mbit(f.bytes, f.secs)));
    }
    r.figure("path", path);
    Ok(())
}
