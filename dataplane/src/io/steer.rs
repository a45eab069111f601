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
//! socket [`select`]: with `s` the shard byte, `p` the source /64's low
//! word plus the destination /64's low word (big-endian, wrapping) and
//! `o = (p * 0x9E3779B1) >> 16` (a multiplicative hash of the pair),
//!
//! ```text
//! socket = (o + (255 - s)) mod n
//! ```
//!
//! Anything else (CONTROL, handshakes, beacons, short datagrams) returns
//! [`FALLBACK`], out of range, and the kernel uses its 4-tuple hash.
//!
//! # Why this function
//! - One inner flow leaves one sending shard (the multi-queue TUN keeps a
//!   flow on one queue), so its packets carry one shard byte and always go
//!   to one receiving shard: no reordering across shards.
//! - For a fixed node pair the map from `s` to the socket is a bijection mod
//!   `n`: a peer sending from several shards reaches as many receiving
//!   shards. Small nodes with one shard (`s` = 0) are spread by the pair
//!   term `o`, which differs from peer to peer.
//! - It is its own inverse when both nodes run the same number of shards,
//!   and `p` is the same in both directions (the sum is symmetric, the /64s
//!   swap places in a reply, whatever address inside the /64 an inner packet
//!   used). That matters because the TUN's automatic queue selection sends a
//!   flow out of the queue its last *received* packet was written to: data
//!   sent from shard `s` is received on `r = f(s)`, the reply leaves shard
//!   `r` and comes back on `f(r) = s`, so the flow stays put. A map such as
//!   `(s + peer) mod n` would move the flow to another shard on every round
//!   trip. When the shard counts differ, a flow moves at most once if one
//!   count divides the other.
//! - The overlay addresses, unlike the underlay ones, are the same on both
//!   sides of a NAT and behind a relay (which forwards DATA unchanged).
//!
//! Packets are not authenticated yet when the kernel steers them: a forged
//! header can pick its shard, as it could pick its source port before. Every
//! shard can open every DATA packet (the session table and the replay
//! windows are shared by the shards), so steering only changes where the
//! work is done. With UDP GRO on a real NIC the kernel may merge datagrams
//! of one underlay 4-tuple carrying different shard bytes; the batch goes
//! where its first datagram points, so a few packets of a flow may now and
//! then be handled by another shard.

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
    /// 2^32 / golden ratio: spreads the pair's bits into the top half.
    pub const MIX: u32 = 0x9E37_79B1;
}

/// The socket a datagram (starting at the UDP payload) goes to among `n`,
/// or `None` if the kernel's hash decides (not DATA, too short, `n` < 2).
/// The reference for [`program`], which computes the same in classic BPF.
pub fn select(payload: &[u8], n: u32) -> Option<u32> {
    use layout::*;
    if n < 2 || payload.len() < MIN_LEN as usize {
        return None;
    }
    if u32::from(payload[VERSION_AT as usize]) != VERSION_VALUE || u32::from(payload[TYPE_AT as usize]) != DATA_VALUE {
        return None;
    }
    let word = |at: u32| {
        let at = at as usize;
        u32::from_be_bytes([payload[at], payload[at + 1], payload[at + 2], payload[at + 3]])
    };
    let pair = word(SOURCE_WORD_AT).wrapping_add(word(DESTINATION_WORD_AT));
    let o = pair.wrapping_mul(MIX) >> 16;
    let s = u32::from(payload[SHARD_AT as usize]);
    Some((o + (255 - s)) % n)
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// The steering program for a group of `n` sockets (one per shard), or
/// `None` when there is nothing to steer (`n` < 2). Computes [`select`];
/// returns [`FALLBACK`] where `select` gives `None`.
pub fn program(n: u32) -> Option<Vec<libc::sock_filter>> {
    use layout::*;
    use libc::{
        BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_LEN, BPF_MISC, BPF_MOD,
        BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X, BPF_XOR,
    };
    if n < 2 {
        return None;
    }
    // The checks jump forward to the last instruction, `ret #FALLBACK`.
    const LAST: u8 = 18;
    let to_fallback = |at: u8| LAST - at - 1;
    Some(vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ jump(BPF_JMP | BPF_JGE | BPF_K, MIN_LEN, 0, to_fallback(1)),
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, VERSION_AT),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, VERSION_VALUE, 0, to_fallback(3)),
        /* 4 */ stmt(BPF_LD | BPF_B | BPF_ABS, TYPE_AT),
        /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, DATA_VALUE, 0, to_fallback(5)),
        /* 6 */ stmt(BPF_LD | BPF_W | BPF_ABS, SOURCE_WORD_AT),
        /* 7 */ stmt(BPF_MISC | BPF_TAX, 0),
        /* 8 */ stmt(BPF_LD | BPF_W | BPF_ABS, DESTINATION_WORD_AT),
        /* 9 */ stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 10 */ stmt(BPF_ALU | BPF_MUL | BPF_K, MIX),
        /* 11 */ stmt(BPF_ALU | BPF_RSH | BPF_K, 16),
        /* 12 */ stmt(BPF_MISC | BPF_TAX, 0),
        /* 13 */ stmt(BPF_LD | BPF_B | BPF_ABS, SHARD_AT),
        /* 14: 255 - s, s being a byte */ stmt(BPF_ALU | BPF_XOR | BPF_K, 0xff),
        /* 15 */ stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 16 */ stmt(BPF_ALU | BPF_MOD | BPF_K, n),
        /* 17 */ stmt(BPF_RET | BPF_A, 0),
        /* 18 = LAST */ stmt(BPF_RET | BPF_K, FALLBACK),
    ])
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
    let Some(mut filter) = u32::try_from(shards).ok().and_then(program) else {
        return Ok(Steering::OneShard);
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
