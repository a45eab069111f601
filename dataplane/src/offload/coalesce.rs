//! Merging opened TCP segments back into one super-packet for the TUN.
//!
//! The shard feeds consecutive packets bound for the TUN to a [`Run`]: the
//! first with [`Run::start`], each next one with [`Run::try_append`] (which
//! says whether it joins). A run of more than one packet is written as one
//! super-packet: [`Run::finish`] fixes the first packet's header in place and
//! returns the vnet header; the write is that header, the first packet whole,
//! then each later packet without its first [`Run::header_len`] bytes.
//!
//! The rules are the kernel's TCP GRO rules (`tcp_gro_receive`), so the
//! receiving stack sees what a NIC with GRO would give it: IPv6 without
//! extension headers; same addresses, traffic class, flow label and hop
//! limit; same ports, acknowledgment number, window and identical TCP
//! options; contiguous sequence numbers; only ACK set (PSH allowed, and it
//! ends the run); every segment but the last exactly as long as the first,
//! the last no longer; at most [`MAX_RUN`] segments and 64 KiB in all.
//!
//! The merged packet's checksum is left for the kernel to finish
//! (`NEEDS_CSUM`, the field holding the pseudo-header sum), as a NIC's GRO
//! does: each segment was checked by AEAD on the way in.

use super::csum;
use super::segment::tcp_flags::{ACK, PSH};
use super::segment::transport_header_len;
use super::vnet::{FLAG_NEEDS_CSUM, GsoType, VnetHeader};
use super::{IPV6_HEADER_LEN, PROTO_TCP};

/// The most segments in one run (the kernel's GRO stops at 64 too).
pub const MAX_RUN: usize = 64;

const T: usize = IPV6_HEADER_LEN;

/// A run of TCP segments being merged. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Run {
    count: usize,
    gso: usize,
    payload: usize,
    tcp_len: usize,
    next_seq: u32,
    closed: bool,
    psh: bool,
}

fn seq(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[T + 4], p[T + 5], p[T + 6], p[T + 7]])
}

impl Run {
    /// Starts a run at `head`, or `None` when `head` cannot start one (not
    /// TCP over IPv6, no payload, or flags other than ACK and PSH).
    pub fn start(head: &[u8]) -> Option<Run> {
        let tcp_len = transport_header_len(head, PROTO_TCP).ok()?;
        let flags = head[T + 13];
        let payload = head.len() - T - tcp_len;
        if flags & !PSH != ACK || payload == 0 {
            return None;
        }
        Some(Run {
            count: 1,
            gso: payload,
            payload,
            tcp_len,
            next_seq: seq(head).wrapping_add(payload as u32),
            closed: flags & PSH != 0,
            psh: flags & PSH != 0,
        })
    }

    /// Whether `next` joins the run that `head` started; if it does, it is counted.
    pub fn try_append(&mut self, head: &[u8], next: &[u8]) -> bool {
        if self.closed || self.count == MAX_RUN {
            return false;
        }
        let Ok(tcp_len) = transport_header_len(next, PROTO_TCP) else { return false };
        let hdr = T + tcp_len;
        let payload = next.len() - hdr;
        let flags = next[T + 13];
        let same = tcp_len == self.tcp_len
            && head.len() >= hdr
            && next[..4] == head[..4]
            && next[7..T + 4] == head[7..T + 4]
            && next[T + 8..T + 13] == head[T + 8..T + 13]
            && next[T + 14..T + 16] == head[T + 14..T + 16]
            && next[T + 18..hdr] == head[T + 18..hdr];
        let fits = payload > 0 && payload <= self.gso && self.tcp_len + self.payload + payload <= usize::from(u16::MAX);
        if !same || !fits || flags & !PSH != ACK || seq(next) != self.next_seq {
            return false;
        }
        self.count += 1;
        self.payload += payload;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        self.psh = flags & PSH != 0;
        self.closed = self.psh || payload < self.gso;
        true
    }

    /// Packets in the run.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Header bytes (IPv6 + TCP) to skip in every packet after the first.
    pub fn header_len(&self) -> usize {
        T + self.tcp_len
    }

    /// Payload bytes in all.
    pub fn payload_len(&self) -> usize {
        self.payload
    }

    /// Makes `head` the header of the merged packet (payload length, PSH if
    /// the last segment had it, the pseudo-header sum in the checksum field)
    /// and returns the vnet header to write in front of it.
    pub fn finish(&self, head: &mut [u8]) -> VnetHeader {
        let l4_len = self.tcp_len + self.payload;
        head[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        if self.psh {
            head[T + 13] |= PSH;
        }
        let addrs: &[u8; 32] = head[8..40].try_into().unwrap_or(&[0; 32]);
        let pseudo = csum::fold(csum::pseudo_ipv6(addrs, l4_len as u32, PROTO_TCP));
        head[T + 16..T + 18].copy_from_slice(&pseudo.to_be_bytes());
        VnetHeader {
            flags: FLAG_NEEDS_CSUM,
            gso_type: GsoType::TcpV6,
            hdr_len: self.header_len() as u16,
            gso_size: self.gso as u16,
            csum_start: T as u16,
            csum_offset: 16,
        }
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
