//! Why a datagram was dropped, one counter per reason, for metrics
//! (`mycelium_peer_dropped_packets_total{reason}`).

/// Why the peering layer dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Too short, wrong version, or not the length of its type.
    Malformed,
    /// A type the peering layer does not take (DATA, ROUTED_HANDSHAKE, unknown).
    UnexpectedType,
    /// Handshake from a source that exceeded its rate.
    RateLimited,
    /// A handshake message that failed authentication (or a low-order key).
    HandshakeInvalid,
    /// An init whose timestamp is not newer than the last one accepted from that key.
    HandshakeReplay,
    /// An init from a key other than the one this endpoint is known by.
    UnexpectedKey,
    /// Both sides initiated; the other side's init lost the tie-break.
    HandshakeCollision,
    /// A response to no handshake of ours.
    UnsolicitedResponse,
    /// A new inbound peer while at the peer limit.
    TooManyPeers,
    /// A CONTROL packet for an index we do not hold.
    UnknownIndex,
    /// A CONTROL packet for a session of a peer at another endpoint.
    WrongEndpoint,
    /// A CONTROL counter already received or older than the replay window.
    Replay,
    /// A CONTROL packet that failed to open.
    AuthFailed,
    /// A CONTROL packet on a session past its lifetime.
    StaleSession,
    /// An authenticated body with a malformed TLV (the rest is still read).
    MalformedTlv,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 15] = [
        DropReason::Malformed,
        DropReason::UnexpectedType,
        DropReason::RateLimited,
        DropReason::HandshakeInvalid,
        DropReason::HandshakeReplay,
        DropReason::UnexpectedKey,
        DropReason::HandshakeCollision,
        DropReason::UnsolicitedResponse,
        DropReason::TooManyPeers,
        DropReason::UnknownIndex,
        DropReason::WrongEndpoint,
        DropReason::Replay,
        DropReason::AuthFailed,
        DropReason::StaleSession,
        DropReason::MalformedTlv,
    ];

    /// A stable snake_case name for metric labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnexpectedType => "unexpected_type",
            DropReason::RateLimited => "rate_limited",
            DropReason::HandshakeInvalid => "handshake_invalid",
            DropReason::HandshakeReplay => "handshake_replay",
            DropReason::UnexpectedKey => "unexpected_key",
            DropReason::HandshakeCollision => "handshake_collision",
            DropReason::UnsolicitedResponse => "unsolicited_response",
            DropReason::TooManyPeers => "too_many_peers",
            DropReason::UnknownIndex => "unknown_index",
            DropReason::WrongEndpoint => "wrong_endpoint",
            DropReason::Replay => "replay",
            DropReason::AuthFailed => "auth_failed",
            DropReason::StaleSession => "stale_session",
            DropReason::MalformedTlv => "malformed_tlv",
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_reason_at_its_index_with_a_distinct_name() {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(names.insert(r.name()));
        }
    }
}
