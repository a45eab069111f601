//! Shared-memory tests: permissions, first publish, bad files, restarts, and
//! a writer in another process publishing while this one reads.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::identity::PublicKey;
use crate::snapshot::{AlignedVec, Link, LinkState, NodeInfo, Route, RouteChannel, SnapshotBuilder, SnapshotView};
use crate::time::Timestamp;

/// A scratch base directory, on tmpfs where the host has one.
fn base() -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("mycelium-shm-test-");
    if Path::new(dir::SYSTEM_BASE).is_dir() { b.tempdir_in(dir::SYSTEM_BASE) } else { b.tempdir() }.unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Route count of the snapshot published as generation `g`.
fn routes_in(g: u64) -> usize {
    20 + (g as usize * 37) % 200
}

/// A snapshot whose every field is a function of `g`, so a mix of two
/// publications cannot pass [`check_whole`].
fn snapshot_for(g: u64) -> AlignedVec {
    let peer = PublicKey::from_bytes([9; 32]);
    let link = Link::new(1, "192.0.2.1:9651".parse().unwrap(), LinkState::Up, &peer);
    let routes = (0..routes_in(g)).map(|i| {
        let prefix = (0x0400_u128 << 112) | ((i as u128) << 64);
        Route {
            prefix: prefix.to_be_bytes(),
            len: 64,
            next_hop: 1,
            metric: g as u16,
            seqno: (g as u16).wrapping_mul(31),
            router_id: [g as u8; 32],
        }
    });
    let node = NodeInfo::from_public_key(&PublicKey::from_bytes([1; 32]));
    let snap = SnapshotBuilder::new(node, g, Timestamp::from_nanos(g)).links([link]).routes(routes).build().unwrap();
    snap.to_bytes().unwrap()
}

/// Asserts the view is exactly the snapshot built for its generation.
fn check_whole(view: SnapshotView<'_>) {
    let g = view.generation();
    assert_eq!(view.route_count(), routes_in(g), "generation {g}");
    assert_eq!(view.created_at(), Timestamp::from_nanos(g));
    for r in view.routes() {
        assert_eq!((r.metric(), r.seqno(), r.router_id()), (g as u16, (g as u16).wrapping_mul(31), &[g as u8; 32]));
        let hit = view.lookup(&r.prefix()).expect("every route finds itself");
        assert_eq!(hit.route.prefix(), r.prefix());
    }
}

#[test]
fn directory_is_0700_and_every_file_0600() {
    let base = base();
    let dir = ShmDir::new(base.path(), "perm").unwrap();
    let mut publisher = Publisher::create(dir.clone()).unwrap();
    publisher.publish(ROUTES, &snapshot_for(1)).unwrap();
    assert_eq!(mode(dir.path()), 0o700);
    for name in ["control", "lock", "routes"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    assert!(!dir.path().join("routes.tmp").exists());
}

#[test]
fn an_existing_directory_others_can_enter_is_refused() {
    let base = base();
    let dir = ShmDir::new(base.path(), "open").unwrap();
    fs::DirBuilder::new().mode(0o755).create(dir.path()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(Publisher::create(dir), Err(ShmError::InsecureDirectory { mode: 0o755, .. })));
}

#[test]
fn instance_names_must_be_one_plain_path_component() {
    for bad in ["", "../x", "a/b", ".hidden", "sp ace", &"x".repeat(65)] {
        assert!(matches!(ShmDir::new("/tmp", bad), Err(ShmError::InstanceName(_))), "{bad:?}");
    }
    assert_eq!(ShmDir::system("node-1.a_b").unwrap().path(), Path::new("/dev/shm/mycelium-node-1.a_b"));
}

#[test]
fn reader_before_first_publish_reports_not_published_then_picks_it_up() {
    let base = base();
    let dir = ShmDir::new(base.path(), "first").unwrap();
    let mut sub = Subscriber::<RouteChannel>::new(dir.clone());
    assert_eq!(sub.poll().unwrap(), Poll::NotPublished);
    let mut publisher = Publisher::create(dir).unwrap();
    assert_eq!(sub.poll().unwrap(), Poll::NotPublished);
    assert!(sub.current().is_none());
    assert_eq!(publisher.publish(ROUTES, &snapshot_for(5)).unwrap(), 1);
    assert_eq!(sub.poll().unwrap(), Poll::Updated { generation: 1 });
    assert_eq!(sub.current().unwrap().generation(), 5);
    assert_eq!(sub.poll().unwrap(), Poll::Unchanged);
    assert_eq!(sub.generation(), Some(1));
}

#[test]
fn reader_keeps_the_last_good_snapshot_when_a_bad_file_is_published() {
    let base = base();
    let dir = ShmDir::new(base.path(), "bad").unwrap();
    let mut publisher = Publisher::create(dir.clone()).unwrap();
    let mut sub = Subscriber::<RouteChannel>::new(dir);
    publisher.publish(ROUTES, &snapshot_for(3)).unwrap();
    assert_eq!(sub.poll().unwrap(), Poll::Updated { generation: 1 });

    let mut corrupt = snapshot_for(4);
    let n = corrupt.len();
    corrupt[n - 8..].fill(0xff); // the root's relative pointers
    publisher.publish(ROUTES, &corrupt).unwrap();
    assert!(matches!(sub.poll(), Err(SubscribeError::Invalid { generation: 2, .. })));
    check_whole(sub.current().unwrap());
    assert_eq!(sub.current().unwrap().generation(), 3);
    // Reported once, not on every poll.
    assert_eq!(sub.poll().unwrap(), Poll::Unchanged);

    publisher.publish(ROUTES, &snapshot_for(6)).unwrap();
    assert_eq!(sub.poll().unwrap(), Poll::Updated { generation: 3 });
    assert_eq!(sub.current().unwrap().generation(), 6);
}

#[test]
fn reader_keeps_serving_when_the_writer_is_gone_and_follows_its_restart() {
    let base = base();
    let dir = ShmDir::new(base.path(), "restart").unwrap();
    let mut sub = Subscriber::<RouteChannel>::new(dir.clone());
    let mut publisher = Publisher::create(dir.clone()).unwrap();
    publisher.publish(ROUTES, &snapshot_for(1)).unwrap();
    assert!(matches!(Publisher::create(dir.clone()), Err(ShmError::Busy { .. })));
    sub.poll().unwrap();
    drop(publisher);

    assert_eq!(sub.poll().unwrap(), Poll::Unchanged);
    check_whole(sub.current().unwrap());

    let mut restarted = Publisher::create(dir).unwrap();
    assert_eq!(restarted.generation(ROUTES), 1);
    assert_eq!(restarted.publish(ROUTES, &snapshot_for(2)).unwrap(), 2);
    assert_eq!(sub.poll().unwrap(), Poll::Updated { generation: 2 });
    assert_eq!(sub.current().unwrap().generation(), 2);
}

#[test]
fn a_control_page_of_another_layout_is_refused() {
    let base = base();
    let dir = ShmDir::new(base.path(), "layout").unwrap();
    dir.create().unwrap();
    fs::write(dir.path().join("control"), [0x55u8; CONTROL_PAGE_SIZE]).unwrap();
    let mut sub = Subscriber::<RouteChannel>::new(dir.clone());
    assert!(matches!(sub.poll(), Err(SubscribeError::Shm(ShmError::ControlPage { reason: "bad magic", .. }))));
    assert!(matches!(Publisher::create(dir), Err(ShmError::ControlPage { .. })));
}

const WRITER_ENV: &str = "MYCELIUM_SHM_TEST_WRITER_BASE";
const PUBLISHES: u64 = 500;

/// The child process's part: publish generations 1..=PUBLISHES.
fn writer_role(base: &str) {
    let mut publisher = Publisher::create(ShmDir::new(base, "xproc").unwrap()).unwrap();
    for g in 1..=PUBLISHES {
        publisher.publish(ROUTES, &snapshot_for(g)).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn reader_never_sees_a_torn_snapshot_while_another_process_publishes() {
    if let Ok(base) = std::env::var(WRITER_ENV) {
        return writer_role(&base);
    }
    let base = base();
    let dir = ShmDir::new(base.path(), "xproc").unwrap();
    let me = format!("{}::reader_never_sees_a_torn_snapshot_while_another_process_publishes", module_path!());
    let me = me.split_once("::").unwrap().1;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", me, "--test-threads", "1", "--quiet"])
        .env(WRITER_ENV, base.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let mut sub = Subscriber::<RouteChannel>::new(dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = BTreeSet::new();
    let mut polls = 0u64;
    let outcome = loop {
        polls += 1;
        if Instant::now() > deadline || polls > 50_000_000 {
            break Err(format!("gave up after {polls} polls; saw {} generations", seen.len()));
        }
        if let Err(e) = sub.poll() {
            break Err(format!("poll failed: {e}"));
        }
        if let Some(view) = sub.current() {
            let g = view.generation();
            assert!(seen.last().is_none_or(|&last| last <= g), "generations went back");
            if seen.insert(g) {
                check_whole(view);
            }
            if g == PUBLISHES {
                break Ok(());
            }
        }
        if polls.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(20));
        }
    };
    // Never leave the writer behind, whatever happened.
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                child.kill().unwrap();
                break child.wait().unwrap();
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    outcome.unwrap();
    assert!(status.success(), "writer process failed: {status}");
    assert!(seen.len() >= 2, "saw only {seen:?}");
    eprintln!("reader saw {} of {PUBLISHES} generations in {polls} polls", seen.len());
}
