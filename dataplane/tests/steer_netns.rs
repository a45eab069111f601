//! The steering program in the kernel: a reuseport group of shard sockets
//! (bound as the dataplane binds them) on loopback in a fresh network
//! namespace, the program attached, and DATA over IPv4 and IPv6 received on
//! exactly the socket `steer::select` names. Needs root and iproute2.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mycelium_common::address::OverlayAddress;
use mycelium_common::identity::SecretKey;
use mycelium_common::wire::{RoutedKind, RoutedRepr};
use mycelium_dataplane::io::socket::bind_shard_socket;
use mycelium_dataplane::io::steer::{MAX_SHARDS, Steering, attach, select, shard_byte};
use support::{Netns, privileged};

const PORT: u16 = 9811;

fn node(seed: u8) -> OverlayAddress {
    SecretKey::from_bytes([seed; 32]).public_key().address()
}

/// A DATA datagram whose counter field numbers it.
fn data(id: u64, shard: u8, source: u8, destination: u8) -> Vec<u8> {
    let repr = RoutedRepr {
        kind: RoutedKind::Data,
        hop_limit: 64,
        shard,
        key_id: 1,
        counter: id,
        source: node(source),
        destination: node(destination),
        payload_len: 32,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

/// Binds `n` shard sockets, attaches the program, sends DATA from 8 shards
/// of 6 node pairs over `to`, and returns (expected socket, socket it
/// arrived on) per datagram.
fn steer_in_kernel(n: usize, to: SocketAddr) -> Vec<(Option<u32>, usize)> {
    let sockets: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::from(bind_shard_socket(PORT).expect("bind"))).collect();
    assert_eq!(attach(sockets[0].as_fd(), n).expect("SO_ATTACH_REUSEPORT_CBPF"), Steering::Attached);
    let sender = UdpSocket::bind(if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).unwrap();
    let mut sent = Vec::new();
    for pair in 0..6u8 {
        for shard in 0..8u8 {
            let packet = data(sent.len() as u64, shard_byte(usize::from(shard), 8), 10 + pair, 100);
            sender.send_to(&packet, to).unwrap();
            sent.push(select(&packet, n as u32));
        }
    }
    let mut arrived = vec![None; sent.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while arrived.iter().any(Option::is_none) && Instant::now() < deadline {
        for (index, socket) in sockets.iter().enumerate() {
            while let Ok(len) = socket.recv(&mut buf) {
                let id = u64::from_be_bytes(buf[8..16].try_into().unwrap()) as usize;
                assert!(len > 16 && id < sent.len(), "an unexpected datagram");
                arrived[id] = Some(index);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sent.into_iter().zip(arrived).map(|(want, got)| (want, got.expect("every datagram arrives within 5 s"))).collect()
}

#[test]
fn the_kernel_delivers_data_to_the_socket_the_program_names_over_ipv4_and_ipv6() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("steer");
    let results = ns
        .spawn(|| {
            let mut all = Vec::new();
            // The largest program (256 shards) loads too.
            let many: Vec<UdpSocket> =
                (0..MAX_SHARDS).map(|_| UdpSocket::from(bind_shard_socket(PORT + 1).expect("bind"))).collect();
            assert_eq!(attach(many[0].as_fd(), many.len()).expect("256 shards"), Steering::Attached);
            drop(many);
            for n in [2, 3, 4] {
                for to in [format!("127.0.0.1:{PORT}"), format!("[::1]:{PORT}")] {
                    all.push((n, to.clone(), steer_in_kernel(n, to.parse().unwrap())));
                }
            }
            all
        })
        .join()
        .expect("namespace thread");
    for (n, to, pairs) in results {
        let used: std::collections::BTreeSet<usize> = pairs.iter().map(|&(_, got)| got).collect();
        assert_eq!(used.len(), n, "{n} sockets, to {to}: every socket receives some DATA");
        for (id, (want, got)) in pairs.into_iter().enumerate() {
            assert_eq!(want, Some(got as u32), "datagram {id} to {to} with {n} sockets");
        }
    }
}
