//! `mctl` as an operator runs it: the real binary against the admin API
//! served in-process by a fake daemon on an ephemeral loopback port, and
//! against real shared-memory files (route snapshot, shard counters).

use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::Arc;

use mycelium_common::identity::PublicKey;
use mycelium_common::shm::{Publisher, ROUTES, ShmDir};
use mycelium_common::snapshot::{Link, LinkState, NodeInfo, Route, SnapshotBuilder};
use mycelium_common::time::Timestamp;
use mycelium_control::api::fake::{FakeNode, PEER_A_KEY};
use mycelium_control::api::types::{Counters, Graph, NodeInfo as ApiNode, PeerInfo, RouteInfo};
use mycelium_control::api::{AdminState, ApiConfig, HttpServer, start};
use mycelium_dataplane::engine::counters::{DropReason, bump};
use mycelium_dataplane::io::shm::CountersMap;

fn serve() -> (Arc<FakeNode>, HttpServer) {
    let fake = Arc::new(FakeNode::default());
    let config = ApiConfig { addr: "127.0.0.1:0".parse().unwrap(), ..ApiConfig::default() };
    let server = start(&config, fake.clone()).unwrap();
    (fake, server)
}

fn mctl(api: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mctl")).arg("--api").arg(api.to_string()).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A loopback port nothing listens on.
fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[test]
fn status_prints_the_node_as_a_table_and_as_json() {
    let (fake, server) = serve();
    let text = stdout(&mctl(server.local_addr(), &["status"]));
    assert!(text.contains("public key:  aa00000000000000"), "{text}");
    assert!(text.contains("uptime:      1h02m03s"), "{text}");
    assert!(text.contains("shards:      2 (cores 2, 3)"), "{text}");
    assert!(text.contains("snapshot:    generation 42, built 1.2 s ago"), "{text}");
    assert!(text.contains("dropped:     8 packets"), "{text}");
    let json: ApiNode = serde_json::from_str(&stdout(&mctl(server.local_addr(), &["status", "--json"]))).unwrap();
    assert_eq!(json, fake.with(|d| d.node.clone()));
}

#[test]
fn peers_prints_one_aligned_row_per_link() {
    let (_fake, server) = serve();
    let text = stdout(&mctl(server.local_addr(), &["peers"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ENDPOINT") && lines[0].contains("BANDWIDTH"), "{text}");
    let cellular = lines.iter().find(|l| l.contains("cellular")).unwrap();
    for cell in ["48.5 ms", "5.0%", "20 Mbit/s", "1210"] {
        assert!(cellular.contains(cell), "{cell} not in {cellular}");
    }
    assert!(lines[1].contains("udp://192.0.2.1:9651") && lines[1].contains("bb0000000000"), "{text}");
    // The column after ENDPOINT starts at the same offset on every row.
    let col = lines[0].find("PEER").unwrap();
    assert_eq!(&lines[1][col..col + 12], "bb0000000000");
    assert_eq!(&lines[3][col..col + 12], "cc0000000000");

    let peers: Vec<PeerInfo> = serde_json::from_str(&stdout(&mctl(server.local_addr(), &["--json", "peers"]))).unwrap();
    assert_eq!(peers[0].links[1].class, "cellular");
}

#[test]
fn routes_filters_by_state_and_shows_metric_parts() {
    let (_fake, server) = serve();
    let text = stdout(&mctl(server.local_addr(), &["routes", "--fallback"]));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("4cc:2::/64") && text.contains("fallback") && text.contains("7155"), "{text}");
    assert!(text.contains("link 3 (192.0.2.3:9651)"), "{text}");
    assert!(text.contains("link 3 156 (10.0 ms, 0% loss, 1 Gbit/s, fiber) + advertised 6999"), "{text}");
    let all = stdout(&mctl(server.local_addr(), &["routes"]));
    assert_eq!(all.lines().count(), 4, "{all}");
    let json: Vec<RouteInfo> =
        serde_json::from_str(&stdout(&mctl(server.local_addr(), &["routes", "--selected", "--json"]))).unwrap();
    assert_eq!(json.len(), 2);
    let both = mctl(server.local_addr(), &["routes", "--selected", "--fallback"]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn peer_add_and_remove_change_the_daemon_and_report_refusals() {
    let (fake, server) = serve();
    let api = server.local_addr();
    assert_eq!(
        stdout(&mctl(api, &["peer", "add", "udp://[2001:db8::9]:9651"])),
        "added peer udp://[2001:db8::9]:9651\n"
    );
    assert!(fake.with(|d| d.peers.iter().any(|p| p.endpoint == "udp://[2001:db8::9]:9651")));

    let again = mctl(api, &["peer", "add", "udp://[2001:db8::9]:9651"]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("409") && err.contains("exists"), "{err}");

    let json = stdout(&mctl(api, &["peer", "remove", "udp://[2001:db8::9]:9651", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["endpoint"], "udp://[2001:db8::9]:9651");
    assert_eq!(fake.with(|d| d.peers.len()), 2);
    let missing = mctl(api, &["peer", "remove", "udp://198.51.100.1:1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

#[test]
fn changes_send_the_token_from_the_token_file() {
    let fake = Arc::new(FakeNode::default());
    let config =
        ApiConfig { addr: "127.0.0.1:0".parse().unwrap(), token: Some("abc123".into()), ..ApiConfig::default() };
    let server = start(&config, fake.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    let add = |file: &std::path::Path| {
        let mut args = vec!["--token-file", file.to_str().unwrap()];
        args.extend(["peer", "add", "udp://192.0.2.50:9651"]);
        mctl(server.local_addr(), &args)
    };

    let refused = add(&token);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("401") && err.contains("mctl has no token: cannot read") && err.contains("api.token"),
        "{err}"
    );

    std::fs::write(&token, "abc123\n").unwrap();
    assert_eq!(stdout(&add(&token)), "added peer udp://192.0.2.50:9651\n");
    assert_eq!(fake.peers().unwrap().len(), 3);
}

#[test]
fn graph_prints_dot_and_renders_svg_or_says_dot_is_missing() {
    let (_fake, server) = serve();
    let api = server.local_addr();
    let dot = stdout(&mctl(api, &["graph"]));
    assert!(dot.starts_with("digraph mycelium {"), "{dot}");
    assert!(dot.contains(&format!("\"{PEER_A_KEY}\" [label=\"bb0000000000\\n5bb:1::2\"]")), "{dot}");
    assert!(dot.contains("style=dashed"), "route-only hop: {dot}");
    let bold: Vec<&str> = dot.lines().filter(|l| l.contains("penwidth=2.5")).collect();
    assert_eq!(bold.len(), 2, "the selected path's two edges: {dot}");
    assert!(bold[0].contains("link 1") && bold[1].contains("style=dashed"), "{dot}");
    let graph: Graph = serde_json::from_str(&stdout(&mctl(api, &["graph", "--json"]))).unwrap();
    assert_eq!(graph.links.len(), 4);

    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("mesh.svg");
    let empty_path = dir.path().join("no-bin");
    std::fs::create_dir(&empty_path).unwrap();
    let no_dot = Command::new(env!("CARGO_BIN_EXE_mctl"))
        .env("PATH", &empty_path)
        .args(["--api", &api.to_string(), "graph", "--svg"])
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(no_dot.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_dot.stderr).contains("Graphviz"), "{no_dot:?}");

    let has_dot = Command::new("dot").arg("-V").output().is_ok();
    if has_dot {
        stdout(&mctl(api, &["graph", "--svg", svg.to_str().unwrap()]));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.contains("5bb:1::2"), "{text}");
    }
}

#[test]
fn an_unreachable_daemon_is_named_with_exit_code_3() {
    let api = dead_port();
    for args in [&["status"][..], &["peers"], &["routes"], &["graph"], &["peer", "add", "udp://192.0.2.1:1"]] {
        let out = mctl(api, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let expected = format!("mctl: cannot reach myceliumd at http://{api}: connection refused (is it running?)");
        assert_eq!(err.trim(), expected, "{args:?}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_mctl")).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Exit codes:") && text.contains("3  the node could not be reached"), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_mctl")).arg("frobnicate").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

// Shared memory: a published route snapshot and shard counters.

fn key(last: u8) -> PublicKey {
    let mut b = [0u8; 32];
    b[0] = last;
    b[31] = last;
    PublicKey::from_bytes(b)
}

/// Publishes a snapshot with a route to 4cc:2::/64 over link 1 into
/// `<base>/mycelium-<instance>`.
fn publish(base: &std::path::Path, instance: &str) -> Publisher {
    let dir = ShmDir::new(base, instance).unwrap();
    let mut publisher = Publisher::create(dir).unwrap();
    let peer = key(0xbb);
    let prefix: Ipv6Addr = "4cc:2::".parse().unwrap();
    let route = Route {
        prefix: prefix.octets(),
        len: 64,
        next_hop: 1,
        metric: 312,
        seqno: 7,
        router_id: *key(0xcc).as_bytes(),
    };
    let link = Link::new(1, "192.0.2.1:9651".parse().unwrap(), LinkState::Up, &peer);
    let bytes = SnapshotBuilder::new(NodeInfo::from_public_key(&key(0xaa)), 42, Timestamp::now())
        .links([link])
        .routes([route])
        .build()
        .unwrap()
        .to_bytes()
        .unwrap();
    publisher.publish(ROUTES, &bytes).unwrap();
    publisher
}

fn shm_args(base: &std::path::Path, instance: &str) -> Vec<String> {
    let dir = base.join(format!("mycelium-{instance}"));
    vec!["--shm-dir".into(), dir.to_str().unwrap().into()]
}

#[test]
fn route_shows_the_dataplanes_next_hop_and_the_daemons_alternatives() {
    let (_fake, server) = serve();
    let base = tempfile::tempdir().unwrap();
    let _publisher = publish(base.path(), "r1");
    let mut args = shm_args(base.path(), "r1");
    args.extend(["route".into(), "4cc:2::3".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let text = stdout(&mctl(server.local_addr(), &args));
    assert!(text.contains("dataplane (snapshot generation 42, built"), "{text}");
    assert!(text.contains("route:     4cc:2::/64  metric 312  seqno 7"), "{text}");
    assert!(text.contains("next hop:  link 1 to 192.0.2.1:9651 (peer bb0000000000, up)"), "{text}");
    assert!(text.contains("selected:      4cc:2::/64 via link 1 (192.0.2.1:9651), metric 312"), "{text}");
    assert!(text.contains("4cc:2::/64 via link 3 (192.0.2.3:9651), metric 7155"), "{text}");
    assert!(text.contains("lost: metric 7155 > 312"), "{text}");

    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let v: serde_json::Value = serde_json::from_str(&stdout(&mctl(server.local_addr(), &json_args))).unwrap();
    assert_eq!(v["dataplane"]["route"]["link"], 1);
    assert_eq!(v["dataplane"]["route"]["routerId"], hex_key(0xcc));
    assert_eq!(v["daemon"]["alternatives"][0]["reason"], "metric 7155 > 312");

    // No route: the dataplane drops it.
    let mut none: Vec<&str> = args.clone();
    *none.last_mut().unwrap() = "5ff::1";
    let text = stdout(&mctl(server.local_addr(), &none));
    assert!(text.contains("no route: packets to it are dropped (no_route)"), "{text}");
}

fn hex_key(b: u8) -> String {
    key(b).as_bytes().iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn route_still_shows_the_dataplane_when_the_daemon_is_down() {
    let base = tempfile::tempdir().unwrap();
    let _publisher = publish(base.path(), "r2");
    let mut args = shm_args(base.path(), "r2");
    args.extend(["route".into(), "4cc:2::3".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = mctl(dead_port(), &args);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("next hop:  link 1 to 192.0.2.1:9651"), "{text}");
    assert!(text.contains("daemon: unavailable"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach myceliumd"));

    // Neither: no such instance either.
    let out = mctl(dead_port(), &["--instance", "no-such-instance-here", "route", "4cc:2::3"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/shm/mycelium-no-such-instance-here"), "{err}");
}

#[test]
fn counters_are_read_from_shared_memory_with_every_drop_reason() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("mycelium-c1");
    std::fs::create_dir(&dir).unwrap();
    let s0 = CountersMap::create(&dir, 0).unwrap();
    let s1 = CountersMap::create(&dir, 1).unwrap();
    bump(&s0.get().underlay_rx_packets, 100);
    bump(&s1.get().underlay_rx_packets, 20);
    s1.get().drop_n(DropReason::Replayed, 3);
    let api = dead_port(); // counters never need the daemon
    let shm = ["--shm-dir", dir.to_str().unwrap()];

    let text = stdout(&mctl(api, &[&shm[..], &["counters"]].concat()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 12 + DropReason::COUNT, "{text}");
    assert!(lines[0].contains("SHARD 0") && lines[0].contains("SHARD 1") && lines[0].ends_with("TOTAL"), "{text}");
    let row = |name: &str| lines.iter().find(|l| l.starts_with(name)).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(row("underlay rx packets")[3..], ["100", "20", "120"]);
    assert_eq!(row("drop replayed")[2..], ["0", "3", "3"]);
    for reason in DropReason::ALL {
        assert!(text.contains(&format!("drop {}", reason.label())), "{}", reason.label());
    }

    let json = stdout(&mctl(api, &[&shm[..], &["counters", "--shard", "1", "--json"]].concat()));
    let c: Counters = serde_json::from_str(&json).unwrap();
    assert_eq!(c.shards.len(), 1);
    assert_eq!(c.shards[0].drops["replayed"], 3);
    assert_eq!(c.shards[0].drops.len(), DropReason::COUNT);

    let out = mctl(api, &[&shm[..], &["counters", "--shard", "7"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no shard 7 (shards: 0, 1)"));

    let gone = base.path().join("mycelium-nothing");
    let out = mctl(api, &["--shm-dir", gone.to_str().unwrap(), "counters"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mycelium-nothing"));
}
