//! The lab's scenarios (`mlab run NAME`) as tests: each brings up its own
//! lab of real nodes over emulated links, asserts what the mesh did, and
//! adds its report (figures, checks) to `target/lab-report.json` (the path
//! is printed). One scenario runs at a time (they would share the machine's
//! cores otherwise). Churn runs for 40 s here (seeded), 2 minutes in
//! `mlab run churn`. Needs root and iproute2; without them each test says
//! so and passes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use mycelium_tests::netns::privileged;
use mycelium_tests::node::binary;
use mycelium_tools::lab::Options;
use mycelium_tools::lab::scenario::{self, ScenarioOptions, Suite};

/// One lab at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long churn changes links in the test.
const CHURN: Duration = Duration::from_secs(40);

fn report_file() -> PathBuf {
    let debug = binary("myceliumd").parent().map(PathBuf::from).unwrap_or_default();
    debug.parent().map_or_else(|| PathBuf::from("lab-report.json"), |t| t.join("lab-report.json"))
}

/// Runs scenario `name` and asserts that it passed.
fn scenario(name: &str) {
    if !privileged() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = format!("sc{}", std::process::id() % 100_000);
    let run_dir = std::env::temp_dir().join(format!("mlab-test-{lab}"));
    let mut opts = ScenarioOptions::new(
        Options { name: lab, run_dir: run_dir.clone(), bin_dir: binary("myceliumd").parent().map(PathBuf::from) },
        1,
    );
    opts.churn = CHURN;
    let mut out = Vec::new();
    let report = scenario::run(name, &opts, &mut out);
    let _ = std::fs::remove_dir_all(&run_dir);
    eprintln!("{}", String::from_utf8_lossy(&out));
    let report = report.unwrap_or_else(|e| panic!("scenario {name}: {e}"));
    let file = report_file();
    match Suite::merge_into(&file, &report) {
        Ok(()) => eprintln!("figures of {name} written to {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
    assert!(report.passed, "scenario {name} failed:\n{}", report.failures());
}

#[test]
fn latency_three_fiber_hops_beat_a_satellite_hop_until_they_slow_down() {
    scenario("latency");
}

#[test]
fn loss_a_clean_path_beats_a_shorter_lossy_one() {
    scenario("loss");
}

#[test]
fn bandwidth_the_faster_of_two_equal_latency_links_is_selected() {
    scenario("bandwidth");
}

#[test]
fn multilink_a_stream_survives_the_fiber_going_down_and_moves_back() {
    scenario("multilink");
}

#[test]
fn geography_the_geographically_shorter_path_is_chosen_first() {
    scenario("geography");
}

#[test]
fn churn_every_pair_stays_reachable_while_the_underlay_is_connected() {
    scenario("churn");
}
