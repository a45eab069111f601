//! The steering program run by a small classic BPF interpreter (the opcodes
//! it uses, with the kernel's rules: an out-of-bounds load ends the program
//! with 0) over real routed headers.

use std::collections::BTreeSet;

use libc::sock_filter;
use mycelium_common::address::OverlayAddress;
use mycelium_common::identity::SecretKey;
use mycelium_common::wire::{PacketType, RoutedKind, RoutedRepr};

use super::{FALLBACK, program, select};

/// Runs `prog` over `packet` (the UDP payload, as the kernel presents it).
fn interpret(prog: &[sock_filter], packet: &[u8]) -> u32 {
    use libc::*;
    let load = |k: u32, size: usize| -> Option<u32> {
        let at = usize::try_from(k).ok()?;
        let bytes = packet.get(at..at.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    };
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    // Jumps only go forward, so a program runs at most its length in steps.
    for _ in 0..prog.len() {
        let ins = prog[pc];
        pc += 1;
        let k = ins.k;
        match u32::from(ins.code) {
            c if c == BPF_LD | BPF_W | BPF_LEN => a = packet.len() as u32,
            c if c == BPF_LD | BPF_B | BPF_ABS => match load(k, 1) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == BPF_LD | BPF_H | BPF_ABS => match load(k, 2) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == BPF_LD | BPF_W | BPF_ABS => match load(k, 4) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == BPF_MISC | BPF_TAX => x = a,
            c if c == BPF_MISC | BPF_TXA => a = x,
            c if c == BPF_ALU | BPF_ADD | BPF_X => a = a.wrapping_add(x),
            c if c == BPF_ALU | BPF_ADD | BPF_K => a = a.wrapping_add(k),
            c if c == BPF_ALU | BPF_MUL | BPF_K => a = a.wrapping_mul(k),
            c if c == BPF_ALU | BPF_RSH | BPF_K => a = a.checked_shr(k).unwrap_or(0),
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= k,
            c if c == BPF_ALU | BPF_XOR | BPF_K => a ^= k,
            c if c == BPF_ALU | BPF_MOD | BPF_K => {
                assert_ne!(k, 0, "the kernel refuses a constant modulus of 0");
                a %= k;
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += usize::from(if a == k { ins.jt } else { ins.jf }),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc += usize::from(if a >= k { ins.jt } else { ins.jf }),
            c if c == BPF_RET | BPF_A => return a,
            c if c == BPF_RET | BPF_K => return k,
            other => panic!("opcode {other:#06x} at {} is not interpreted", pc - 1),
        }
        assert!(pc < prog.len(), "jumped past the end");
    }
    panic!("ran off the end without ret");
}

fn node(seed: u8) -> OverlayAddress {
    SecretKey::from_bytes([seed; 32]).public_key().address()
}

/// Another address in the /64 of `address`.
fn host_in_slash_64(address: OverlayAddress, host: u8) -> OverlayAddress {
    let mut bytes = *address.as_bytes();
    bytes[8..].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, host]);
    OverlayAddress::from_bytes(bytes).unwrap()
}

fn packet(kind: RoutedKind, shard: u8, source: OverlayAddress, destination: OverlayAddress, key_id: u32) -> Vec<u8> {
    let repr = RoutedRepr {
        kind,
        hop_limit: 60,
        shard,
        key_id,
        counter: 0x0102_0304_0506_0708 ^ u64::from(shard),
        source,
        destination,
        payload_len: 100,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

fn data(shard: u8, source: OverlayAddress, destination: OverlayAddress) -> Vec<u8> {
    packet(RoutedKind::Data, shard, source, destination, 7)
}

fn steer(n: u32, packet: &[u8]) -> u32 {
    let prog = program(n).expect("a program for n >= 2");
    let got = interpret(&prog, packet);
    assert_eq!(got, select(packet, n).unwrap_or(FALLBACK), "program and reference disagree (n = {n})");
    assert!(got < n || got == FALLBACK, "{got} is neither a socket of {n} nor the fallback");
    got
}

#[test]
fn the_program_passes_the_kernels_static_checks() {
    for n in [2, 3, 4, 16, 1024, u32::MAX] {
        let prog = program(n).unwrap();
        assert!(prog.len() <= libc::BPF_MAXINSNS as usize);
        let last = prog.last().unwrap();
        assert_eq!(u32::from(last.code), libc::BPF_RET | libc::BPF_K);
        assert_eq!(last.k, FALLBACK, "the checks' jumps land on the fallback");
        for (i, ins) in prog.iter().enumerate() {
            if u32::from(ins.code) & 0x07 == libc::BPF_JMP {
                let past = i + 1 + usize::from(ins.jt.max(ins.jf));
                assert!(past < prog.len(), "jump at {i} leaves the program");
                if ins.jf != 0 {
                    assert_eq!(i + 1 + usize::from(ins.jf), prog.len() - 1, "check at {i} falls back");
                }
            }
        }
    }
}

#[test]
fn nothing_is_built_for_one_shard() {
    assert!(program(0).is_none());
    assert!(program(1).is_none());
    assert_eq!(select(&data(3, node(1), node(2)), 1), None);
}

#[test]
fn one_peer_sending_from_several_shards_reaches_every_receiving_shard() {
    for (a, b) in [(1, 2), (3, 4), (5, 6), (200, 9)] {
        for n in [2, 4] {
            let got: BTreeSet<u32> = (0..8).map(|s| steer(n, &data(s, node(a), node(b)))).collect();
            assert_eq!(got, (0..n).collect(), "shards 0..8 of node {a} over {n} sockets");
        }
        let got: BTreeSet<u32> = (0..2).map(|s| steer(2, &data(s, node(a), node(b)))).collect();
        assert_eq!(got.len(), 2, "two sending shards of node {a} reach both of two receiving shards");
    }
}

#[test]
fn one_shard_peers_are_spread_by_peer() {
    let local = node(100);
    let mut per_socket = [0u32; 4];
    for peer in 1..=16 {
        per_socket[steer(4, &data(0, node(peer), local)) as usize] += 1;
    }
    assert!(per_socket.iter().all(|&c| (1..=8).contains(&c)), "16 one-shard peers over 4 sockets: {per_socket:?}");
}

#[test]
fn a_reply_comes_back_to_the_shard_that_sent_the_flow() {
    for (a, b) in [(1, 2), (3, 4), (7, 250)] {
        // Inner packets use other hosts of the nodes' /64s; the routed header
        // names the sender's node address and the inner destination.
        let (a_node, b_node) = (node(a), node(b));
        let (a_host, b_host) = (host_in_slash_64(a_node, 9), host_in_slash_64(b_node, 77));
        for n in [2, 3, 4, 8] {
            for s in 0..n as u8 {
                let r = steer(n, &packet(RoutedKind::Data, s, a_node, b_host, 0xb0b));
                let back = steer(n, &packet(RoutedKind::Data, r as u8, b_node, a_host, 0xa11));
                assert_eq!(back, u32::from(s), "A sent on {s}, B received on {r}, A got the reply on {back} (n {n})");
            }
        }
        // A node with 2 shards and one with 4: a flow settles after one move.
        for s in 0..2u8 {
            let r = steer(4, &data(s, a_node, b_node));
            let back = steer(2, &data(r as u8, b_node, a_node));
            let again = steer(4, &data(back as u8, a_node, b_node));
            assert_eq!(again, r, "2 and 4 shards: stable after one round trip");
        }
    }
}

#[test]
fn packets_other_than_data_and_short_ones_fall_back_to_the_kernels_hash() {
    let (a, b) = (node(1), node(2));
    let full = data(1, a, b);
    for n in [2, 4] {
        assert_ne!(steer(n, &full), FALLBACK);
        assert_eq!(steer(n, &packet(RoutedKind::Handshake, 1, a, b, 0)), FALLBACK);
        for kind in [PacketType::Control, PacketType::HandshakeInit, PacketType::HandshakeResponse, PacketType::Beacon]
        {
            let mut other = full.clone();
            other[1] = kind as u8;
            assert_eq!(steer(n, &other), FALLBACK, "{kind:?}");
        }
        let mut version = full.clone();
        version[0] = 2;
        assert_eq!(steer(n, &version), FALLBACK, "another version");
        for len in [0, 1, 2, 3, 4, 20, 39, 40, 47] {
            assert_eq!(steer(n, &full[..len]), FALLBACK, "{len} bytes");
        }
        assert_ne!(steer(n, &full[..48]), FALLBACK, "a bare header is read whole");
    }
}

#[test]
fn on_arbitrary_bytes_the_program_agrees_with_the_reference() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let len = (next() % 90) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && len >= 2 {
            bytes[0] = 1;
            bytes[1] = 1;
        }
        for n in [2, 3, 5, 8, 64, 1000] {
            steer(n, &bytes);
        }
    }
}
