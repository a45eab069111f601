//! Scenario `churn` (`tools/lab/scenarios/churn.toml`): 10 nodes, a ring
//! with five chords. For [`ScenarioOptions::churn`] (2 minutes in
//! `mlab run`), a seeded generator takes a random link down or brings one
//! back (at most [`MAX_DOWN`] down at once); after each change settles
//! ([`SETTLE`]), every node pings every other, retrying until it answers
//! or [`CHECK_WITHIN`] has passed. Whenever the underlay graph is
//! connected, every pair must answer. A background ping from the first
//! node to the middle one runs throughout.
//!
//! Figures: changes made, checks run (and skipped while the graph was
//! split), the slowest check, route changes (the nodes'
//! `mycelium_route_changes_total`, summed), and packet loss (the checks'
//! pings and the background ping's).

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mycelium_control::api::types::Counters;
use mycelium_control::rng::Rng;

use super::{Report, Run, ScenarioOptions, ms, round2};
use crate::emu::Update;
use crate::lab::query::parse_ping;
use crate::lab::{Lab, LabError};

/// The most links down at once.
pub const MAX_DOWN: usize = 3;

/// From a change to its check.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How long a check waits for every pair to answer (an idle link is
/// declared dead after 14 s without hellos).
pub const CHECK_WITHIN: Duration = Duration::from_secs(25);

/// The background ping's interval, seconds.
const BACKGROUND_INTERVAL: f64 = 0.1;

/// Whether the nodes stay connected over the links that are up.
pub fn connected(nodes: usize, links: &[(usize, usize)], up: &[bool]) -> bool {
    let mut seen = vec![false; nodes];
    let mut stack = vec![0];
    while let Some(n) = stack.pop() {
        if nodes == 0 || seen[n] {
            continue;
        }
        seen[n] = true;
        for (i, &(a, b)) in links.iter().enumerate() {
            if up.get(i).copied().unwrap_or(false) {
                if a == n && !seen[b] {
                    stack.push(b);
                }
                if b == n && !seen[a] {
                    stack.push(a);
                }
            }
        }
    }
    seen.iter().all(|&s| s)
}

/// The next change: `(link, up)`. Brings a link back when [`MAX_DOWN`] are
/// down, else flips a random one.
pub fn next_change(rng: &mut Rng, up: &[bool]) -> (usize, bool) {
    let down: Vec<usize> = (0..up.len()).filter(|&i| !up[i]).collect();
    if down.len() >= MAX_DOWN {
        let i = down[rng.below(down.len())];
        return (i, true);
    }
    let i = rng.below(up.len().max(1));
    (i, !up[i])
}

/// What one all-pairs check saw.
#[derive(Debug, Default, Clone, PartialEq)]
struct Check {
    sent: u32,
    received: u32,
    unreachable: Vec<String>,
    slowest: Duration,
}

/// Every node pings every other until it answers or [`CHECK_WITHIN`] has
/// passed: one thread per source node, one ping at a time (so the check
/// itself does not load the machine enough to disturb the hellos).
fn all_pairs(lab: &Lab) -> Check {
    let names: Vec<String> = lab.state().nodes.iter().map(|n| n.name.clone()).collect();
    let start = Instant::now();
    let results: Vec<Check> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|from| {
                let names = &names;
                scope.spawn(move || {
                    let mut c = Check::default();
                    let mut pending: Vec<&String> = names.iter().filter(|n| *n != from).collect();
                    while !pending.is_empty() && start.elapsed() < CHECK_WITHIN {
                        pending.retain(|to| {
                            let received = lab.ping(from, to, 1).map_or(0, |p| p.received);
                            c.sent += 1;
                            c.received += received;
                            if received > 0 {
                                c.slowest = c.slowest.max(start.elapsed());
                            }
                            received == 0
                        });
                    }
                    c.unreachable = pending.iter().map(|to| format!("{from}->{to}")).collect();
                    c
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Check {
                    unreachable: vec!["a ping thread panicked".into()],
                    ..Check::default()
                })
            })
            .collect()
    });
    let mut check = Check::default();
    for c in results {
        check.sent += c.sent;
        check.received += c.received;
        check.slowest = check.slowest.max(c.slowest);
        check.unreachable.extend(c.unreachable);
    }
    check
}

/// The sum of every node's `mycelium_route_changes_total`.
fn route_changes(lab: &Lab) -> Result<u64, LabError> {
    let mut total = 0;
    for (i, n) in lab.state().nodes.iter().enumerate() {
        let url = format!("http://127.0.0.1:{}/metrics", 9990 + i);
        let text = lab
            .netns(&n.name)?
            .spawn_checked(move || ureq::get(&url).call().and_then(|mut r| r.body_mut().read_to_string()))
            .join()
            .map_err(|_| LabError::Api(n.name.clone(), "the metrics thread panicked".into()))?
            .map_err(|e| LabError::Api(n.name.clone(), format!("cannot enter its namespace: {e}")))?
            .map_err(|e| LabError::Api(n.name.clone(), format!("metrics: {e}")))?;
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("mycelium_route_changes_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
    }
    Ok(total)
}

/// The "N packets transmitted" of ping's summary (0 without one).
fn transmitted(text: &str) -> u32 {
    text.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `node`'s dataplane drops by reason, summed over its shards.
fn drops(lab: &Lab, node: &str) -> BTreeMap<String, u64> {
    let counters: Result<Counters, _> = super::api_get(lab, node, "/api/v1/counters", &[]);
    let mut total = BTreeMap::new();
    for shard in counters.map(|c| c.shards).unwrap_or_default() {
        for (reason, n) in shard.drops {
            *total.entry(reason).or_insert(0) += n;
        }
    }
    total
}

/// The reasons whose counts grew from `before` to `after`, with the growth.
fn grown(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(k, &n)| {
            let d = n.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} +{d}"))
        })
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

/// A child process killed (and reaped) on drop.
struct Background(Option<Child>);

impl Background {
    fn output(mut self) -> Option<String> {
        let child = self.0.take()?;
        let out = child.wait_with_output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(s: &mut Run<'_>, r: &mut Report, opts: &ScenarioOptions) -> Result<(), LabError> {
    let lab_links: Vec<(usize, usize)> = {
        let st = s.lab().state();
        let index = |name: &str| st.nodes.iter().position(|n| n.name == name).unwrap_or(0);
        st.links.iter().map(|l| (index(&l.a), index(&l.b))).collect()
    };
    let nodes = s.lab().state().nodes.len();
    let (first, middle) = (s.lab().state().nodes[0].name.clone(), s.lab().state().nodes[nodes / 2].name.clone());

    s.say("waiting until every pair answers");
    let initial = all_pairs(s.lab());
    r.figure("initial_check_ms", ms(initial.slowest));
    if !r.check(
        "every pair answers before the churn starts",
        initial.unreachable.is_empty(),
        format!("{} pairs unreachable: {}", initial.unreachable.len(), initial.unreachable.join(" ")),
    ) {
        return Ok(());
    }

    let secs = opts.churn.as_secs_f64();
    let count = (secs / BACKGROUND_INTERVAL) as u64;
    let deadline = (secs + CHECK_WITHIN.as_secs_f64() + 10.0).ceil() as u64;
    s.say(&format!("churn for {secs:.0} s (seed {}), background ping {first} -> {middle}", opts.seed));
    let background = Background(Some(
        s.lab()
            .command(&first, "ping")?
            .args(["-6", "-n", "-q", "-i", &BACKGROUND_INTERVAL.to_string(), "-W", "1"])
            .args(["-c", &count.to_string(), "-w", &deadline.to_string()])
            .arg(&s.lab().node(&middle)?.address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Command { command: "ping".into(), message: e.to_string() })?,
    ));
    let changes_before = route_changes(s.lab())?;
    let mut rng = Rng::new(opts.seed);
    let mut up = vec![true; lab_links.len()];
    let (mut changes, mut checks, mut skipped, mut sent, mut received) = (0u32, 0u32, 0u32, 0u32, 0u32);
    let (mut slowest, mut failures) = (Duration::ZERO, Vec::new());
    let start = Instant::now();
    while start.elapsed() < opts.churn {
        let (i, now_up) = next_change(&mut rng, &up);
        up[i] = now_up;
        let l = s.lab().state().links[i].clone();
        s.lab().set_link(&l.a, &l.b, l.index, &Update { up: Some(now_up), ..Update::default() })?;
        changes += 1;
        let down: Vec<String> = (0..up.len()).filter(|&j| !up[j]).map(|j| format!("l{j}")).collect();
        std::thread::sleep(SETTLE);
        if !connected(nodes, &lab_links, &up) {
            skipped += 1;
            s.say(&format!("l{i} {}; down: {}; split, no check", if now_up { "up" } else { "down" }, down.join(" ")));
            continue;
        }
        let names: Vec<String> = s.lab().state().nodes.iter().map(|n| n.name.clone()).collect();
        let before: Vec<BTreeMap<String, u64>> = names.iter().map(|n| drops(s.lab(), n)).collect();
        let c = all_pairs(s.lab());
        checks += 1;
        sent += c.sent;
        received += c.received;
        slowest = slowest.max(c.slowest);
        s.say(&format!(
            "l{i} {}; down: {}; all pairs answered within {} ms{}",
            if now_up { "up" } else { "down" },
            if down.is_empty() { "none".into() } else { down.join(" ") },
            c.slowest.as_millis(),
            if c.unreachable.is_empty() { String::new() } else { format!(", NOT {}", c.unreachable.join(" ")) }
        ));
        if !c.unreachable.is_empty() {
            // Where the routes point for each pair that did not answer.
            let paths: Vec<String> = c
                .unreachable
                .iter()
                .filter_map(|pair| pair.split_once("->"))
                .map(|(a, b)| s.path(a, b).map_or_else(|e| e.to_string(), |p| p.join(" -> ")))
                .collect();
            // And what the emulators of their first hops passed.
            let mut first_hops: Vec<usize> = c
                .unreachable
                .iter()
                .filter_map(|pair| pair.split_once("->"))
                .filter_map(|(a, b)| s.lab().next_hop(a, b).ok().flatten().map(|h| h.link))
                .collect();
            first_hops.sort_unstable();
            first_hops.dedup();
            let emulators: Vec<String> = first_hops
                .iter()
                .map(|&l| match s.lab().link_stats(&s.lab().state().links[l]) {
                    Ok(v) => format!("l{l} a->b {} b->a {}", v["a_to_b"]["stats"], v["b_to_a"]["stats"]),
                    Err(e) => format!("l{l}: {e}"),
                })
                .collect();
            // And what the dataplanes of the nodes involved dropped meanwhile.
            let mut involved: Vec<&str> =
                c.unreachable.iter().filter_map(|p| p.split_once("->")).flat_map(|(a, b)| [a, b]).collect();
            involved.sort_unstable();
            involved.dedup();
            let dropped: Vec<String> = involved
                .iter()
                .filter_map(|n| names.iter().position(|m| m == n).map(|i| (n, i)))
                .map(|(n, i)| format!("{n}: {}", grown(&before[i], &drops(s.lab(), n))))
                .collect();
            failures.push(format!(
                "after change {changes} (down: {}): {} unreachable; routes: {}; emulators: {}; dataplane drops: {}",
                down.join(" "),
                c.unreachable.join(" "),
                paths.join("; "),
                emulators.join("; "),
                dropped.join("; ")
            ));
        }
    }
    let route_changes = route_changes(s.lab())?.saturating_sub(changes_before);
    // The background ping sent its count by now (it is bounded by -w too).
    let bg = background.output().map(|t| (transmitted(&t), parse_ping(&t, 0).received));
    r.figure("churn_secs", round2(start.elapsed().as_secs_f64()));
    r.figure("link_changes", changes);
    r.figure("checks", checks);
    r.figure("checks_skipped_split", skipped);
    r.figure("slowest_check_ms", ms(slowest));
    r.figure("route_changes", route_changes);
    r.figure("check_pings_sent", sent);
    r.figure("check_ping_loss", round2(1.0 - f64::from(received) / f64::from(sent.max(1))));
    if let Some((bg_sent, bg_received)) = bg {
        r.figure("background_ping_sent", bg_sent);
        r.figure("background_ping_loss", round2(1.0 - f64::from(bg_received) / f64::from(bg_sent.max(1))));
    }
    r.check(
        "the churn made changes and checked after them",
        changes > 0 && checks > 0,
        format!("{changes} changes, {checks} checks"),
    );
    r.check(
        "whenever the underlay is connected, every pair reaches every other",
        failures.is_empty(),
        if failures.is_empty() { format!("{checks} checks of 90 pairs, all answered") } else { failures.join("; ") },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: [(usize, usize); 4] = [(0, 1), (1, 2), (2, 3), (3, 0)];

    #[test]
    fn a_ring_stays_connected_with_one_link_down_but_not_two_apart() {
        assert!(connected(4, &RING, &[true; 4]));
        assert!(connected(4, &RING, &[false, true, true, true]));
        assert!(!connected(4, &RING, &[false, true, false, true]));
        assert!(!connected(5, &RING, &[true; 4]), "a node without links is cut off");
    }

    #[test]
    fn changes_are_seeded_and_never_take_more_than_max_down_links_down() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut up = vec![true; 15];
            let mut seen = Vec::new();
            for _ in 0..200 {
                let (i, now_up) = next_change(&mut rng, &up);
                assert_ne!(up[i], now_up, "a change changes something");
                up[i] = now_up;
                assert!(up.iter().filter(|u| !**u).count() <= MAX_DOWN);
                seen.push((i, now_up));
            }
            seen
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn grown_drop_counts_name_only_the_reasons_that_grew() {
        let before: BTreeMap<String, u64> = [("auth_failed".to_owned(), 3), ("no_route".to_owned(), 1)].into();
        let after: BTreeMap<String, u64> =
            [("auth_failed".to_owned(), 5), ("no_route".to_owned(), 1), ("no_session".to_owned(), 2)].into();
        assert_eq!(grown(&before, &after), "auth_failed +2, no_session +2");
        assert_eq!(grown(&after, &after), "none");
    }

    #[test]
    fn the_ping_summary_gives_the_packets_sent() {
        let text = "--- x ping statistics ---\n1200 packets transmitted, 1187 received, 1.08% packet loss\n";
        assert_eq!(transmitted(text), 1200);
        assert_eq!(transmitted("garbage"), 0);
    }
}
