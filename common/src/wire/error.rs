//! The one error type of the wire layer: which fault a packet or TLV has.

/// Why bytes were refused (parsing) or could not be written (emitting).
///
/// Small and `Copy`, so the dataplane can keep one drop counter per variant
/// ([`WireError::ALL`], [`WireError::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum WireError {
    /// Shorter than the fixed layout, or a TLV runs past the end of its body.
    #[error("truncated: shorter than the layout of its type")]
    Truncated,
    /// The version byte is not [`VERSION`](super::VERSION).
    #[error("unsupported protocol version")]
    BadVersion,
    /// The packet type (or, for a single TLV, the TLV type) is not known.
    #[error("unknown type")]
    UnknownType,
    /// A known packet type, but not one this view takes.
    #[error("a packet type this parser does not take")]
    WrongType,
    /// A fixed-size message or TLV value is longer (or shorter) than its layout.
    #[error("length does not match the layout of its type")]
    BadLength,
    /// A prefix length above 128.
    #[error("prefix length above 128")]
    BadPrefixLength,
    /// A prefix with bits set after its prefix length.
    #[error("prefix has bits set after its length")]
    PrefixHostBits,
    /// An address outside the overlay prefix `400::/7`.
    #[error("address outside 400::/7")]
    NotOverlayAddress,
    /// Emitting: the output buffer is shorter than the `Repr`'s `buffer_len()`.
    #[error("output buffer too short")]
    BufferTooShort,
    /// Emitting: a value is too long for its 16-bit length field.
    #[error("value too long for its length field")]
    TooLong,
}

impl WireError {
    /// Every variant, in declaration order (for per-reason counters).
    pub const ALL: [WireError; 10] = [
        WireError::Truncated,
        WireError::BadVersion,
        WireError::UnknownType,
        WireError::WrongType,
        WireError::BadLength,
        WireError::BadPrefixLength,
        WireError::PrefixHostBits,
        WireError::NotOverlayAddress,
        WireError::BufferTooShort,
        WireError::TooLong,
    ];

    /// A stable snake_case name, for metric labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_version",
            WireError::UnknownType => "unknown_type",
            WireError::WrongType => "wrong_type",
            WireError::BadLength => "bad_length",
            WireError::BadPrefixLength => "bad_prefix_length",
            WireError::PrefixHostBits => "prefix_host_bits",
            WireError::NotOverlayAddress => "not_overlay_address",
            WireError::BufferTooShort => "buffer_too_short",
            WireError::TooLong => "too_long",
        }
    }

    /// The position of this variant in [`WireError::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_variant_at_its_index_with_a_distinct_name() {
        let mut names = std::collections::BTreeSet::new();
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(names.insert(e.name()));
        }
    }
}
