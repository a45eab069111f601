//! `mlab demo` runs as the README says: a 6-node mesh, a stream that
//! survives the cut of its best link, and a summary; nothing is left after.
//! Needs root and iproute2; without them it says so and passes.

use std::process::Command;

use mycelium_tests::netns::privileged;
use mycelium_tests::node::binary;

#[test]
fn the_demo_reroutes_a_live_stream_around_a_cut_link_and_leaves_nothing_behind() {
    if !privileged() {
        return;
    }
    let name = format!("dm{}", std::process::id() % 100_000);
    let run_dir = std::env::temp_dir().join(format!("mlab-test-{name}"));
    let out = Command::new(binary("mlab"))
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["demo", "--name", &name, "--bin-dir"])
        .arg(binary("myceliumd").parent().unwrap())
        .output()
        .expect("run mlab demo");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if let Ok(state) = mycelium_tools::lab::state::State::load(&run_dir, &name) {
        let _ = mycelium_tools::lab::down::teardown(&state);
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    eprintln!("{text}");
    assert!(out.status.success(), "mlab demo failed");
    assert!(text.contains("mlab demo: summary"), "the summary is printed");
    assert!(text.contains("ms after the cut"), "the route moved off the cut link");
    assert!(text.contains("every byte checked; longest pause"), "the stream survived");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(&format!("mlab-{name}-")), "no namespace is left");
}
