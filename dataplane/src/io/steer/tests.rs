//! The steering program run by a small classic BPF interpreter (the opcodes
//! it uses, with the kernel's rules: an out-of-bounds load ends the program
//! with 0) over real routed headers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use libc::sock_filter;
use mycelium_common::address::OverlayAddress;
use mycelium_common::identity::SecretKey;
use mycelium_common::wire::{PacketType, RoutedKind, RoutedRepr};

use super::{FALLBACK, MAX_SHARDS, Tie, nearest, program, select, shard_byte};

/// Runs `prog` over `packet` (the UDP payload, as the kernel presents it).
fn interpret(prog: &[sock_filter], packet: &[u8]) -> u32 {
    use libc::*;
    let load = |k: u32, size: usize| -> Option<u32> {
        let at = usize::try_from(k).ok()?;
        let bytes = packet.get(at..at.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    };
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [None::<u32>; 16];
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
            c if c == BPF_ST => mem[k as usize] = Some(a),
            c if c == BPF_LD | BPF_MEM => a = mem[k as usize].expect("the kernel refuses a load before a store"),
            c if c == BPF_LDX | BPF_MEM => x = mem[k as usize].expect("the kernel refuses a load before a store"),
            c if c == BPF_MISC | BPF_TAX => x = a,
            c if c == BPF_MISC | BPF_TXA => a = x,
            c if c == BPF_ALU | BPF_ADD | BPF_X => a = a.wrapping_add(x),
            c if c == BPF_ALU | BPF_ADD | BPF_K => a = a.wrapping_add(k),
            c if c == BPF_ALU | BPF_SUB | BPF_X => a = a.wrapping_sub(x),
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
            c if c == BPF_JMP | BPF_JGE | BPF_X => pc += usize::from(if a >= x { ins.jt } else { ins.jf }),
            c if c == BPF_JMP | BPF_JA => pc += k as usize,
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
    if n == 1 {
        return 0;
    }
    thread_local! {
        static PROGRAMS: RefCell<BTreeMap<u32, Vec<sock_filter>>> = const { RefCell::new(BTreeMap::new()) };
    }
    let got = PROGRAMS.with_borrow_mut(|programs| {
        let prog = programs.entry(n).or_insert_with(|| program(n).expect("a program for n >= 2"));
        interpret(prog, packet)
    });
    assert_eq!(got, select(packet, n).unwrap_or(FALLBACK), "program and reference disagree (n = {n})");
    assert!(got < n || got == FALLBACK, "{got} is neither a socket of {n} nor the fallback");
    got
}

#[test]
fn the_program_passes_the_kernels_static_checks() {
    for n in [2, 3, 4, 16, 100, 255, 256] {
        let prog = program(n).unwrap();
        assert!(prog.len() <= libc::BPF_MAXINSNS as usize, "{} instructions for {n}", prog.len());
        let last = prog.last().unwrap();
        assert_eq!(u32::from(last.code) & 0x07, libc::BPF_RET, "the program ends with a return");
        for (i, ins) in prog.iter().enumerate() {
            let code = u32::from(ins.code);
            if code & 0x07 == libc::BPF_JMP {
                let past = if code == libc::BPF_JMP | libc::BPF_JA {
                    i + 1 + ins.k as usize
                } else {
                    i + 1 + usize::from(ins.jt.max(ins.jf))
                };
                assert!(past < prog.len(), "jump at {i} leaves the program (n {n})");
            }
        }
    }
}

#[test]
fn nothing_is_built_for_one_shard_or_past_the_shard_byte() {
    assert!(program(0).is_none());
    assert!(program(1).is_none());
    assert!(program(MAX_SHARDS + 1).is_none());
    assert_eq!(select(&data(3, node(1), node(2)), 1), None);
    assert_eq!(select(&data(3, node(1), node(2)), MAX_SHARDS + 1), None);
}

#[test]
fn every_shard_of_a_node_has_its_own_byte() {
    for n in 1..=MAX_SHARDS as usize {
        let bytes: BTreeSet<u8> = (0..n).map(|i| shard_byte(i, n)).collect();
        assert_eq!(bytes.len(), n, "{n} shards");
    }
    assert_eq!(shard_byte(0, 1), 128, "a one-shard node sits in the middle");
    assert_eq!((shard_byte(0, 2), shard_byte(1, 2)), (64, 192));
}

/// `nearest` for every position, per shard count and tie rule.
fn tables(max: u32) -> Vec<[[u8; 256]; 2]> {
    (0..=max)
        .map(|n| {
            let mut t = [[0u8; 256]; 2];
            if n > 0 {
                for x in 0..=255u8 {
                    t[0][usize::from(x)] = nearest(x, n, Tie::Below) as u8;
                    t[1][usize::from(x)] = nearest(x, n, Tie::Above) as u8;
                }
            }
            t
        })
        .collect()
}

#[test]
fn flows_settle_for_any_two_shard_counts_and_never_move_between_equal_powers_of_two() {
    // Every pair of counts up to 24, and pairs of larger ones (a debug build
    // enumerates about ten million round trips here).
    const MAX: u32 = 24;
    const LARGE: [u32; 7] = [24, 32, 48, 64, 96, 128, 256];
    let t = tables(MAX_SHARDS);
    // A is the "forward" side (its /64 word is the smaller): what A sends is
    // rotated by +o and ties go below; what B sends, by -o, ties above.
    let a_to_b = |s: u32, n_a: u32, n_b: u32, o: u8| {
        u32::from(t[n_b as usize][0][usize::from(shard_byte(s as usize, n_a as usize).wrapping_add(o))])
    };
    let b_to_a = |r: u32, n_b: u32, n_a: u32, o: u8| {
        u32::from(t[n_a as usize][1][usize::from(shard_byte(r as usize, n_b as usize).wrapping_sub(o))])
    };
    // A flow opened from shard `start` of a node with `n` shards: `there`
    // takes a sending shard to the other node's receiving one, `back` the
    // reply to this node's. The reply moves the flow at most once.
    let settles = |n: u32, exact: bool, there: &dyn Fn(u32) -> u32, back: &dyn Fn(u32) -> u32, what: &str| {
        for start in 0..n {
            let moved = back(there(start));
            if exact {
                assert_eq!(moved, start, "{what}: the flow from {start} moved to {moved}");
            }
            let again = back(there(moved));
            assert_eq!(again, moved, "{what}: from {start} the flow moved to {moved} then {again}");
        }
    };
    let small = (1..=MAX).flat_map(|a| (1..=MAX).map(move |b| (a, b)));
    let large = LARGE.iter().flat_map(|&a| LARGE.iter().map(move |&b| (a, b)));
    for (n_a, n_b) in small.chain(large) {
        let exact = n_a == n_b && 256 % n_a == 0;
        for o in 0..=255u8 {
            let (ab, ba) = (|s| a_to_b(s, n_a, n_b, o), |r| b_to_a(r, n_b, n_a, o));
            settles(n_a, exact, &ab, &ba, &format!("A ({n_a} shards) to B ({n_b}), o {o}"));
            settles(n_b, exact, &ba, &ab, &format!("B ({n_b} shards) to A ({n_a}), o {o}"));
        }
    }
}

#[test]
fn one_peer_sending_from_several_shards_reaches_every_receiving_shard() {
    for (a, b) in [(1, 2), (3, 4), (5, 6), (200, 9)] {
        for n in [2, 4] {
            let got: BTreeSet<u32> =
                (0..n as usize).map(|s| steer(n, &data(shard_byte(s, n as usize), node(a), node(b)))).collect();
            assert_eq!(got, (0..n).collect(), "{n} shards of node {a} over {n} sockets");
        }
        let got: BTreeSet<u32> = (0..8).map(|s| steer(4, &data(shard_byte(s, 8), node(a), node(b)))).collect();
        assert_eq!(got, (0..4).collect(), "8 shards of node {a} over 4 sockets");
    }
}

#[test]
fn one_shard_peers_are_spread_by_peer() {
    let local = node(100);
    let mut per_socket = [0u32; 4];
    for peer in 1..=16 {
        per_socket[steer(4, &data(shard_byte(0, 1), node(peer), local)) as usize] += 1;
    }
    assert!(per_socket.iter().all(|&c| (1..=8).contains(&c)), "16 one-shard peers over 4 sockets: {per_socket:?}");
}

#[test]
fn a_reply_comes_back_to_the_shard_that_sent_the_flow() {
    for (a, b) in [(1, 2), (3, 4), (7, 250), (2, 1)] {
        // Inner packets use other hosts of the nodes' /64s; the routed header
        // names the sender's node address and the inner destination.
        let (a_node, b_node) = (node(a), node(b));
        let (a_host, b_host) = (host_in_slash_64(a_node, 9), host_in_slash_64(b_node, 77));
        let a_sends = |s: u32, n_a: u32, n_b: u32| {
            steer(n_b, &packet(RoutedKind::Data, shard_byte(s as usize, n_a as usize), a_node, b_host, 0xb0b))
        };
        let b_sends = |r: u32, n_b: u32, n_a: u32| {
            steer(n_a, &packet(RoutedKind::Data, shard_byte(r as usize, n_b as usize), b_node, a_host, 0xa11))
        };
        for n in [2, 4, 8, 16] {
            for s in 0..n {
                let r = a_sends(s, n, n);
                let back = b_sends(r, n, n);
                assert_eq!(back, s, "A sent on {s}, B received on {r}, A got the reply on {back} ({n} shards each)");
            }
        }
        // Different counts: a flow settles after one move at most.
        for (n_a, n_b) in [(3, 3), (6, 6), (2, 4), (4, 2), (3, 4), (4, 6), (8, 3), (1, 5), (5, 1)] {
            for s in 0..n_a {
                let moved = b_sends(a_sends(s, n_a, n_b), n_b, n_a);
                let again = b_sends(a_sends(moved, n_a, n_b), n_b, n_a);
                assert_eq!(again, moved, "{n_a} and {n_b} shards: from {s} to {moved}, then {again}");
            }
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
        for n in [2, 3, 5, 8, 64, 255, 256] {
            steer(n, &bytes);
        }
    }
}

#[test]
fn the_program_agrees_with_the_reference_for_every_shard_byte_both_ways() {
    for n in [2, 3, 7, 64, 255, 256] {
        for (a, b) in [(1, 2), (2, 1), (9, 9)] {
            for byte in 0..=255u8 {
                steer(n, &data(byte, node(a), node(b)));
            }
        }
    }
}
