//! Spreading the DATA packets between two nodes over the receiving shards:
//! a classic BPF program attached to the port's SO_REUSEPORT group.
//!
//! Without it the kernel picks a shard's socket by a hash of the underlay
//! 4-tuple, so everything one peer node sends lands on one receiving shard,
//! however many inner flows it carries and however many shards sent them.
//! [`program`] builds a program the kernel runs on each datagram instead
//! (`SO_ATTACH_REUSEPORT_CBPF`, see [`attach`]); its return value is the
//! index of the socket in the group, which is the shard index because
//! `Node::start` binds the sockets in shard order.
//!
//! # What it reads
//! For UDP the kernel runs the program with the packet starting at the UDP
//! payload (`run_bpf_filter` in `net/core/sock_reuseport.c` pulls the UDP
//! header), so offsets are those of the routed header
//! (`mycelium_common::wire::routed`):
//!
//! ```text
//!  0 version   1 type   3 shard (the origin's sending shard)
//! 16..24 source /64      32..40 destination /64     (overlay addresses)
//! ```
//!
//! A datagram of at least 48 bytes with version 1 and type DATA goes to
//! socket [`select`]; anything else (CONTROL, handshakes, beacons, short
//! datagrams) returns [`FALLBACK`], out of range, and the kernel uses its
//! 4-tuple hash.
//!
//! # The function
//! Think of the shard byte as a position on a circle of 256. A node with
//! `n` shards puts its shard `i` at [`shard_byte`]`(i, n)`, the middle of
//! the `i`-th of `n` equal arcs, and sends that byte in every DATA packet
//! (it is what the nonce calls the shard; any distinct byte per shard keeps
//! nonces apart). A receiver with `n` shards turns the sender's position `b`
//! into one of its own:
//!
//! ```text
//! o = ((source /64 low word + destination /64 low word) * 0x9E3779B1) >> 24
//! x = b + o  (mod 256)   if source word <= destination word   ("forward")
//! x = b - o  (mod 256)   otherwise                             ("backward")
//! socket = the shard whose position is nearest to x; on a tie, the one
//!          below x going forward, the one above going backward
//! ```
//!
//! # Why this function
//! - One inner flow leaves one sending shard (the multi-queue TUN keeps a
//!   flow on one queue), so its packets carry one shard byte and always go
//!   to one receiving shard: no reordering across shards.
//! - A flow must also stay where it is across round trips. The TUN's
//!   automatic queue selection sends a flow out of the queue its last
//!   *received* packet was written to: data sent from shard `s` is received
//!   on `r`, the reply leaves shard `r`, and wherever the reply is received
//!   becomes the flow's sending shard. With the rotation by `o` undone on
//!   the way back (`+o` one way, `-o` the other; both sides agree on the
//!   direction by comparing the /64s) and "nearest position" on both sides,
//!   this settles for any two shard counts. The idea, on a continuous
//!   circle: when the receiver has at least as many shards, its arcs are no
//!   wider than the sender's, so the receiver's position nearest the
//!   sender's lies within the sender's arc and the reply comes straight
//!   back; when it has fewer, the flow moves once, to the sender's shard
//!   nearest the receiver's position, and stays there; the opposite tie
//!   rules settle the exact half-way cases. On the 256 integer positions
//!   the unit tests check it by enumeration, for every pair of shard counts
//!   up to 24, every pair among 24, 32, 48, 64, 96, 128 and 256, and every
//!   `o`: a flow moves at most once, and never between equal counts that
//!   divide 256 (for others, such as 3 and 3, the rounded positions are
//!   one apart in spacing and a flow may move once). The first version, a
//!   reflection `(o - s) mod n`, was exact for equal counts but with 3 and
//!   4 shards, or 4 and 6, some flows changed shard on every round trip.
//! - The pair term `o` spreads the peers: a one-shard node sends from
//!   position 128, and `o` puts different peers on different receiving
//!   shards; a node's several shards land on as many receiving shards as
//!   the smaller count allows.
//! - The overlay /64s, unlike underlay addresses, are the same on both
//!   sides of a NAT and behind a relay (which forwards DATA unchanged), and
//!   the sum is symmetric: a reply, which swaps them, computes the same `o`.
//!   Two /64s with equal low words (one pair in 2^32) both count as
//!   "forward"; their flows still steer, they may just not settle.
//!
//! Packets are not authenticated yet when the kernel steers them: a forged
//! header can pick its shard, as it could pick its source port before. Every
//! shard can open every DATA packet (the session table and the replay
//! windows are shared by the shards), so steering only changes where the
//! work is done. With UDP GRO on a real NIC the kernel may merge datagrams
//! of one underlay 4-tuple carrying different shard bytes; the batch goes
//! where its first datagram points, so a few packets of a flow may now and
//! then be handled by another shard.
//!
//! # The program
//! Classic BPF has no tables, so [`program`] computes `x` with a few loads
//! and ALU steps and then finds the shard with a binary search over the
//! arcs of the circle (one search tree per tie rule, built from the same
//! table [`select`] uses): at most about 3 (n + 1) instructions per tree,
//! within the kernel's 4096 for the 256 shards the nonce byte allows.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::sys::cvt;

/// The program's answer for "not steered": out of range for any group, so
/// the kernel falls back to its 4-tuple hash.
pub const FALLBACK: u32 = u32::MAX;

/// `SO_ATTACH_REUSEPORT_CBPF` (`include/uapi/asm-generic/socket.h`; not in
/// the libc crate for Linux). SPARC numbers it differently
/// (`arch/sparc/include/uapi/asm/socket.h`).
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
pub const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
/// `SO_ATTACH_REUSEPORT_CBPF` on SPARC (`arch/sparc/include/uapi/asm/socket.h`).
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
pub const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 0x35;

/// Offsets and values the program reads (see the module docs).
mod layout {
    use mycelium_common::wire::{PacketType, ROUTED_HEADER_LEN, VERSION};

    pub const MIN_LEN: u32 = ROUTED_HEADER_LEN as u32;
    pub const VERSION_AT: u32 = 0;
    pub const TYPE_AT: u32 = 1;
    pub const SHARD_AT: u32 = 3;
    /// Low word of the source /64 (bytes 20..24 of the header).
    pub const SOURCE_WORD_AT: u32 = 20;
    /// Low word of the destination /64 (bytes 36..40).
    pub const DESTINATION_WORD_AT: u32 = 36;
    pub const VERSION_VALUE: u32 = VERSION as u32;
    pub const DATA_VALUE: u32 = PacketType::Data as u32;
    /// 2^32 / golden ratio: spreads the pair's bits into the top byte.
    pub const MIX: u32 = 0x9E37_79B1;
}

/// The most shards steering handles (the shard byte's range).
pub const MAX_SHARDS: u32 = 256;

/// Where shard `index` of `shards` sits on the circle of 256: the middle of
/// its arc. This is the shard byte the sealed engine puts in the header
/// (distinct for every shard of a node, for `shards` up to [`MAX_SHARDS`]).
pub fn shard_byte(index: usize, shards: usize) -> u8 {
    let shards = shards.clamp(1, MAX_SHARDS as usize);
    let index = index.min(shards - 1);
    ((2 * index + 1) * 128 / shards) as u8
}

/// Which neighbour wins when `x` lies exactly between two shard positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tie {
    /// The one below `x` (packets "forward", source /64 <= destination /64).
    Below,
    /// The one above `x` ("backward").
    Above,
}

/// The shard of `n` whose position is nearest to `x` on the circle.
fn nearest(x: u8, n: u32, tie: Tie) -> u32 {
    let mut best = (u32::MAX, false, 0);
    for i in 0..n {
        let p = shard_byte(i as usize, n as usize);
        let below = x.wrapping_sub(p); // distance going down from x to p
        let above = p.wrapping_sub(x);
        let (distance, on_below_side) = if below <= above { (below, true) } else { (above, false) };
        // Lower sorts first: the distance, then the side the tie rule prefers.
        let loses_tie = on_below_side != (tie == Tie::Below);
        let key = (u32::from(distance), loses_tie, i);
        if (key.0, key.1) < (best.0, best.1) {
            best = key;
        }
    }
    best.2
}

/// The socket a datagram (starting at the UDP payload) goes to among `n`,
/// or `None` if the kernel's hash decides (not DATA, too short, `n` < 2 or
/// more than [`MAX_SHARDS`]). The reference for [`program`], which computes
/// the same in classic BPF.
pub fn select(payload: &[u8], n: u32) -> Option<u32> {
    use layout::*;
    if !(2..=MAX_SHARDS).contains(&n) || payload.len() < MIN_LEN as usize {
        return None;
    }
    if u32::from(payload[VERSION_AT as usize]) != VERSION_VALUE || u32::from(payload[TYPE_AT as usize]) != DATA_VALUE {
        return None;
    }
    let word = |at: u32| {
        let at = at as usize;
        u32::from_be_bytes([payload[at], payload[at + 1], payload[at + 2], payload[at + 3]])
    };
    let (source, destination) = (word(SOURCE_WORD_AT), word(DESTINATION_WORD_AT));
    let o = (source.wrapping_add(destination).wrapping_mul(MIX) >> 24) as u8;
    let b = payload[SHARD_AT as usize];
    Some(if source <= destination {
        nearest(b.wrapping_add(o), n, Tie::Below)
    } else {
        nearest(b.wrapping_sub(o), n, Tie::Above)
    })
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// A binary search over `arcs` (sorted `(first x, shard)` runs covering
/// 0..256) with `x` in A: `jge` picks the half, a `ja` reaches the upper
/// half past the lower one, so no jump offset is limited to 8 bits.
fn search(arcs: &[(u32, u32)]) -> Vec<libc::sock_filter> {
    use libc::{BPF_JA, BPF_JGE, BPF_JMP, BPF_K, BPF_RET};
    if let [(_, shard)] = arcs {
        return vec![stmt(BPF_RET | BPF_K, *shard)];
    }
    let mid = arcs.len() / 2;
    let (lower, upper) = (search(&arcs[..mid]), search(&arcs[mid..]));
    let mut code = Vec::with_capacity(2 + lower.len() + upper.len());
    // x >= first of the upper half: fall through to the `ja`; else skip it.
    code.push(jump(BPF_JMP | BPF_JGE | BPF_K, arcs[mid].0, 0, 1));
    code.push(stmt(BPF_JMP | BPF_JA, lower.len() as u32));
    code.extend(lower);
    code.extend(upper);
    code
}

/// The runs of equal answers of `nearest` over 0..256.
fn arcs(n: u32, tie: Tie) -> Vec<(u32, u32)> {
    let mut arcs: Vec<(u32, u32)> = Vec::with_capacity(n as usize + 1);
    for x in 0..=255u8 {
        let shard = nearest(x, n, tie);
        if arcs.last().is_none_or(|&(_, last)| last != shard) {
            arcs.push((u32::from(x), shard));
        }
    }
    arcs
}

/// The steering program for a group of `n` sockets (one per shard), or
/// `None` when there is nothing to steer (`n` < 2) or `n` is past
/// [`MAX_SHARDS`]. Computes [`select`]; returns [`FALLBACK`] where `select`
/// gives `None`.
pub fn program(n: u32) -> Option<Vec<libc::sock_filter>> {
    use layout::*;
    use libc::{
        BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_B, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_LDX, BPF_LEN,
        BPF_MEM, BPF_MISC, BPF_MUL, BPF_RET, BPF_RSH, BPF_ST, BPF_SUB, BPF_TAX, BPF_W, BPF_X,
    };
    if !(2..=MAX_SHARDS).contains(&n) {
        return None;
    }
    const SOURCE: u32 = 0; // scratch memory words
    const DESTINATION: u32 = 1;
    const OFFSET: u32 = 2;
    let forward = search(&arcs(n, Tie::Below));
    let backward = search(&arcs(n, Tie::Above));
    let mut code = vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ jump(BPF_JMP | BPF_JGE | BPF_K, MIN_LEN, 0, 4),
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, VERSION_AT),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, VERSION_VALUE, 0, 2),
        /* 4 */ stmt(BPF_LD | BPF_B | BPF_ABS, TYPE_AT),
        /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, DATA_VALUE, 1, 0),
        /* 6: every check fails here */ stmt(BPF_RET | BPF_K, FALLBACK),
        /* 7 */ stmt(BPF_LD | BPF_W | BPF_ABS, SOURCE_WORD_AT),
        /* 8 */ stmt(BPF_ST, SOURCE),
        /* 9 */ stmt(BPF_MISC | BPF_TAX, 0),
        /* 10 */ stmt(BPF_LD | BPF_W | BPF_ABS, DESTINATION_WORD_AT),
        /* 11 */ stmt(BPF_ST, DESTINATION),
        /* 12 */ stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 13 */ stmt(BPF_ALU | BPF_MUL | BPF_K, MIX),
        /* 14: o */ stmt(BPF_ALU | BPF_RSH | BPF_K, 24),
        /* 15 */ stmt(BPF_ST, OFFSET),
        /* 16 */ stmt(BPF_LD | BPF_MEM, DESTINATION),
        /* 17 */ stmt(BPF_LDX | BPF_MEM, SOURCE),
        /* 18: destination >= source: forward, fall through to 19's skip */
        jump(BPF_JMP | BPF_JGE | BPF_X, 0, 1, 0),
        /* 19 */ stmt(BPF_JMP | BPF_JA, 4 + forward.len() as u32),
        /* 20 */ stmt(BPF_LD | BPF_B | BPF_ABS, SHARD_AT),
        /* 21 */ stmt(BPF_LDX | BPF_MEM, OFFSET),
        /* 22 */ stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 23 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
    ];
    code.extend(forward);
    code.extend([
        stmt(BPF_LD | BPF_B | BPF_ABS, SHARD_AT),
        stmt(BPF_LDX | BPF_MEM, OFFSET),
        stmt(BPF_ALU | BPF_SUB | BPF_X, 0),
        stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
    ]);
    code.extend(backward);
    Some(code)
}

/// What [`attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// One shard: nothing to steer.
    OneShard,
    /// The program is attached.
    Attached,
}

/// Attaches the steering program for `shards` sockets to the reuseport
/// group of `fd` (any bound member; the program applies to the group).
pub fn attach(fd: BorrowedFd<'_>, shards: usize) -> io::Result<Steering> {
    if shards < 2 {
        return Ok(Steering::OneShard);
    }
    let Some(mut filter) = u32::try_from(shards).ok().and_then(program) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{shards} shards: at most {MAX_SHARDS} steer"),
        ));
    };
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = libc::sock_fprog { len, filter: filter.as_mut_ptr() };
    // Safety: `prog` points at `filter`, which lives until the call returns
    // (the kernel copies the program), and the size passed is `prog`'s.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })?;
    Ok(Steering::Attached)
}

#[cfg(test)]
mod tests;
