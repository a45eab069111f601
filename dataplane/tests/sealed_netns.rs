//! The sealed engine end to end: two `mycelium-dataplane` processes in two
//! network namespaces, with routes and session keys published by a separate
//! writer process exactly as myceliumd would publish them (no control daemon
//! otherwise). Real ping and a checked 100 MB TCP stream cross the overlay;
//! the writer is killed with SIGKILL mid-transfer and forwarding carries on.
//! With two shards per node, concurrent TCP flows are spread over both
//! receiving shards by the reuseport steering program, and are not with
//! `--no-steer`.
//! Needs root and iproute2 (CI has both); without them it says so and passes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::{KeyTable, ReceiveSession, SendSession};
use mycelium_common::shm::{KEYS, Publisher, ROUTES, ShmDir};
use mycelium_common::snapshot::{LOCAL, Link, LinkState, NodeInfo, Route, SnapshotBuilder};
use mycelium_common::time::Timestamp;
use mycelium_dataplane::engine::counters::DropReason;
use mycelium_dataplane::io::shm::{read_all_counters, read_epoch};
use support::{Dataplane, Netns, privileged, summed, transfer, veth};

const TRANSFER_BYTES: usize = 100 * 1024 * 1024;
const WRITER_ENV: &str = "MYCELIUM_TEST_SNAPSHOT_WRITER";
const NET: u8 = 88;

/// Node A then node B: secret key seed, underlay address on the veth.
const NODES: [(u8, &str); 2] = [(0x11, "192.168.88.1:9651"), (0x22, "192.168.88.2:9651")];
/// A -> B and B -> A session keys, and the key ids each receiver chose.
const KEYS_AB: ([u8; 32], u32) = ([0xab; 32], 0xb0b);
const KEYS_BA: ([u8; 32], u32) = ([0xba; 32], 0xa11);

fn public(seed: u8) -> PublicKey {
    SecretKey::from_bytes([seed; 32]).public_key()
}

fn slash_64(key: &PublicKey) -> [u8; 16] {
    key.address().subnet().prefix()
}

/// Publishes generation `generation` of node `me`'s snapshot and key table
/// (peer `other`) into `dir`, for the dataplane epoch found there.
fn publish(publisher: &mut Publisher, dir: &Path, me: usize, generation: u64) {
    let other = 1 - me;
    let (my_key, peer_key) = (public(NODES[me].0), public(NODES[other].0));
    let epoch = read_epoch(dir).expect("read epoch").expect("the dataplane wrote its epoch");
    let peer_endpoint: SocketAddr = NODES[other].1.parse().unwrap();
    let now = Timestamp::now();
    let routes = [
        Route {
            prefix: slash_64(&peer_key),
            len: 64,
            next_hop: 1,
            metric: 96,
            seqno: 1,
            router_id: *peer_key.as_bytes(),
        },
        Route {
            prefix: slash_64(&my_key),
            len: 64,
            next_hop: LOCAL,
            metric: 0,
            seqno: 1,
            router_id: *my_key.as_bytes(),
        },
    ];
    let snapshot = SnapshotBuilder::new(NodeInfo::from_public_key(&my_key), generation, now)
        .routes(routes)
        .links([Link::new(1, peer_endpoint, LinkState::Up, &peer_key)])
        .build()
        .expect("build snapshot");
    let ((send_key, send_id), (receive_key, receive_id)) =
        if me == 0 { (KEYS_AB, KEYS_BA) } else { (KEYS_BA, KEYS_AB) };
    let send = SendSession {
        peer: peer_key.address().octets(),
        peer_key: *peer_key.as_bytes(),
        key_id: send_id,
        key: send_key,
        session_id: 1,
        dataplane_epoch: epoch,
        packet_limit: 1 << 40,
        expires_at_ns: u64::MAX,
    };
    let receive = ReceiveSession {
        key_id: receive_id,
        peer: peer_key.address().octets(),
        key: receive_key,
        session_id: 1,
        dataplane_epoch: epoch,
        expires_at_ns: u64::MAX,
    };
    let keys = KeyTable::new(generation, now.as_nanos(), vec![send], vec![receive]);
    publisher.publish(ROUTES, &snapshot.to_bytes().expect("serialize")).expect("publish routes");
    publisher.publish(KEYS, &keys.to_bytes()).expect("publish keys");
}

/// The writer process: re-executed test binary that republishes both nodes'
/// snapshots every 20 ms until it is killed (or two minutes pass).
#[test]
fn snapshot_writer_process_entry_point() {
    let Ok(dirs) = std::env::var(WRITER_ENV) else {
        return; // Only does something when the sealed test starts it as a child.
    };
    let dirs: Vec<PathBuf> = dirs.split('|').map(PathBuf::from).collect();
    let mut publishers: Vec<Publisher> =
        dirs.iter().map(|d| Publisher::create(ShmDir::at(d)).expect("open publisher")).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut generation = 1;
    while Instant::now() < deadline {
        for (me, (publisher, dir)) in publishers.iter_mut().zip(&dirs).enumerate() {
            publish(publisher, dir, me, generation);
        }
        generation += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Writer(Child);

impl Writer {
    /// Starts the writer for A and B and waits until both run a snapshot.
    fn start(dp_a: &Dataplane, dp_b: &Dataplane) -> Writer {
        let writer = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "snapshot_writer_process_entry_point", "--nocapture", "--test-threads", "1"])
            .env(WRITER_ENV, format!("{}|{}", dp_a.shm_dir.display(), dp_b.shm_dir.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the snapshot writer");
        let writer = Writer(writer);
        wait_for_snapshots(&[dp_a, dp_b]);
        writer
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_snapshots(dps: &[&Dataplane]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while dps.iter().any(|dp| summed(dp).snapshot_generation == 0) {
        assert!(
            Instant::now() < deadline,
            "the dataplanes did not take a snapshot within 10 s:\n{}",
            dps.iter().map(|dp| dp.log_text()).collect::<Vec<_>>().join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(from: &Netns, to: &str) -> String {
    let out = from.command("ping").args(["-6", "-c", "5", "-i", "0.2", "-W", "2", to]).output().expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ping {to} failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn sealed_dataplanes_carry_ping_and_a_checked_stream_and_keep_forwarding_when_the_writer_dies() {
    if !privileged() {
        return;
    }
    let a = Netns::new("sa");
    let b = Netns::new("sb");
    veth(&a, &b, NET);
    let pid = std::process::id();
    let (addr_a, addr_b) = (public(NODES[0].0).address().to_string(), public(NODES[1].0).address().to_string());
    let start = |ns: &Netns, tag: &str, addr: &str, tun: &str| {
        Dataplane::start(ns, tag, &["--engine", "sealed", "--port", "9651", "--address", addr, "--tun-name", tun])
            .running()
    };
    let dp_a = start(&a, "sa", &addr_a, &format!("myc{pid}sa"));
    let dp_b = start(&b, "sb", &addr_b, &format!("myc{pid}sb"));

    let mut writer = Writer::start(&dp_a, &dp_b);

    let rtt = ping(&a, &addr_b);
    eprintln!("sealed overlay ping: {}", rtt.lines().find(|l| l.contains("min/avg/max")).unwrap_or(""));

    // Kill the writer once a third of the stream has crossed.
    let killed = Arc::new(AtomicBool::new(false));
    let killer = {
        let killed = Arc::clone(&killed);
        let dir = dp_a.shm_dir.clone();
        let pid = writer.0.id();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let sent: u64 = mycelium_dataplane::io::shm::read_all_counters(&dir)
                    .map(|all| all.iter().map(|(_, c)| c.tun_rx_bytes).sum())
                    .unwrap_or(0);
                if sent > TRANSFER_BYTES as u64 / 3 {
                    // Safety: kill on our own child's pid, not yet reaped (the
                    // Writer guard reaps it after this thread is joined).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    killed.store(true, Ordering::SeqCst);
                    return Some(sent);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    };
    let secs = transfer(&a, &b, format!("[{addr_b}]:5201").parse().unwrap(), TRANSFER_BYTES);
    let sent_at_kill = killer.join().unwrap().expect("the writer was killed during the transfer");
    assert!(killed.load(Ordering::SeqCst));
    assert!(sent_at_kill < TRANSFER_BYTES as u64, "killed mid-transfer ({sent_at_kill} bytes in)");
    let status = writer.0.wait().expect("reap the writer");
    assert!(!status.success(), "the writer died by SIGKILL: {status:?}");
    eprintln!(
        "100 MB over the sealed overlay: {secs:.2} s ({:.0} Mbit/s); writer killed after {} MB",
        TRANSFER_BYTES as f64 * 8.0 / secs / 1e6,
        sent_at_kill >> 20
    );

    // Still forwarding with the last snapshot, and nothing was forged or lost to crypto.
    ping(&b, &addr_a);
    let (ca, cb) = (summed(&dp_a), summed(&dp_b));
    eprintln!("counters A: {ca:?}\ncounters B: {cb:?}");
    assert!(ca.underlay_tx_bytes >= TRANSFER_BYTES as u64, "A sealed and sent the stream");
    assert!(cb.tun_tx_bytes >= TRANSFER_BYTES as u64, "B opened it and wrote it to its TUN");
    for c in [&ca, &cb] {
        for r in [DropReason::AuthFailed, DropReason::Malformed, DropReason::NoSession, DropReason::InvalidOutput] {
            assert_eq!(c.drops[r as usize], 0, "{r:?}");
        }
    }
    assert_eq!(dp_a.stop(), Some(0));
    assert_eq!(dp_b.stop(), Some(0));
}

/// Concurrent flows for the spread test, and bytes per flow.
const FLOWS: u16 = 16;
const FLOW_BYTES: usize = 2 * 1024 * 1024;

/// Runs two 2-shard nodes (steering on or off), sends [`FLOWS`] concurrent
/// checked TCP streams A -> B, and returns each node's underlay datagrams
/// received per shard, and A's TUN packets read per shard (what it sent).
fn two_shard_flows(tag: &str, steer: bool) -> [Vec<u64>; 3] {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    veth(&a, &b, NET);
    let pid = std::process::id();
    let (addr_a, addr_b) = (public(NODES[0].0).address().to_string(), public(NODES[1].0).address().to_string());
    let start = |ns: &Netns, node: &str, addr: &str| {
        let tun = format!("myc{pid}{tag}{node}");
        let mut args = vec!["--engine", "sealed", "--port", "9651", "--cores", "0,1", "--address", addr];
        args.extend(["--tun-name", &tun]);
        if !steer {
            args.push("--no-steer");
        }
        let dp = Dataplane::start(ns, &format!("{tag}{node}"), &args).running();
        let wanted = if steer { "receive steering attached" } else { "receive steering off" };
        assert!(dp.log_text().contains(wanted), "expected {wanted:?}:\n{}", dp.log_text());
        dp
    };
    let dp_a = start(&a, "a", &addr_a);
    let dp_b = start(&b, "b", &addr_b);
    let writer = Writer::start(&dp_a, &dp_b);
    ping(&a, &addr_b);
    let before = [per_shard_rx(&dp_a), per_shard_rx(&dp_b), per_shard_tun_rx(&dp_a)];
    std::thread::scope(|scope| {
        let flows: Vec<_> = (0..FLOWS)
            .map(|i| {
                let to: SocketAddr = format!("[{addr_b}]:{}", 5300 + i).parse().unwrap();
                let (a, b) = (&a, &b);
                scope.spawn(move || transfer(a, b, to, FLOW_BYTES))
            })
            .collect();
        for flow in flows {
            flow.join().expect("a flow failed");
        }
    });
    let after = [per_shard_rx(&dp_a), per_shard_rx(&dp_b), per_shard_tun_rx(&dp_a)];
    drop(writer);
    for dp in [&dp_a, &dp_b] {
        let c = summed(dp);
        for r in [DropReason::AuthFailed, DropReason::Malformed, DropReason::NoSession, DropReason::Replayed] {
            assert_eq!(c.drops[r as usize], 0, "{r:?} (steer {steer})");
        }
    }
    assert_eq!(dp_a.stop(), Some(0));
    assert_eq!(dp_b.stop(), Some(0));
    [0, 1, 2].map(|n| after[n].iter().zip(&before[n]).map(|(x, y)| x - y).collect())
}

fn per_shard_rx(dp: &Dataplane) -> Vec<u64> {
    read_all_counters(&dp.shm_dir).expect("read counters").into_iter().map(|(_, c)| c.underlay_rx_packets).collect()
}

fn per_shard_tun_rx(dp: &Dataplane) -> Vec<u64> {
    read_all_counters(&dp.shm_dir).expect("read counters").into_iter().map(|(_, c)| c.tun_rx_packets).collect()
}

/// The smallest shard's share of what a node received.
fn smallest_share(per_shard: &[u64]) -> f64 {
    let total: u64 = per_shard.iter().sum();
    assert!(total > 1000, "the flows crossed: {per_shard:?}");
    *per_shard.iter().min().unwrap() as f64 / total as f64
}

#[test]
fn flows_between_two_nodes_reach_both_receiving_shards_with_steering_and_one_without() {
    if !privileged() {
        return;
    }
    match mycelium_dataplane::io::affinity::allowed_cores() {
        Ok(cores) if cores.contains(&0) && cores.contains(&1) => {}
        other => {
            eprintln!("skipping: needs CPUs 0 and 1 (allowed: {other:?})");
            return;
        }
    }
    let [a, b, sent] = two_shard_flows("st", true);
    eprintln!("steering on: datagrams received per shard: A (acks) {a:?}, B (data) {b:?}; A sent {sent:?}");
    // A's sending shards too: the replies come back to the shard that sent
    // a flow, so the TUN (which sends a flow from the queue its replies were
    // written to) keeps it there.
    for (node, per_shard) in [("A", &a), ("B", &b), ("A's TUN", &sent)] {
        let share = smallest_share(per_shard);
        assert!(share >= 0.05, "node {node}: the smaller shard got {:.1} % ({per_shard:?})", share * 100.0);
    }
    let [a, b, sent] = two_shard_flows("ns", false);
    eprintln!("steering off: datagrams received per shard: A (acks) {a:?}, B (data) {b:?}; A sent {sent:?}");
    for (node, per_shard) in [("A", &a), ("B", &b)] {
        let share = smallest_share(per_shard);
        assert!(share < 0.05, "node {node}: without steering one shard takes a peer's traffic ({per_shard:?})");
    }
}
