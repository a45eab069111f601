//! The Internet checksum (RFC 1071): a ones' complement sum of big-endian
//! 16-bit words, kept unfolded in a `u64` while adding, folded at the end.
//!
//! [`sum`] adds the data as *little-endian* 32-bit words into a 64-bit
//! accumulator and swaps the folded result once: the ones' complement sum is
//! independent of byte order (RFC 1071, 2.(B)) and of word width (2^16 = 1
//! modulo 0xffff), so this equals the word-by-word big-endian sum, and the
//! loop has no byte swap in it (the compiler vectorises it).

/// Adds `data` (starting on an even offset of the checksummed range) to `initial`.
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut tail = [0u8; 4];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    acc += u64::from(u32::from_le_bytes(tail));
    initial + u64::from(fold(acc).swap_bytes())
}

/// Folds an accumulated sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The complemented checksum of an accumulated sum, with 0 sent as 0xffff
/// (both are zero in ones' complement; UDP reserves 0 for "no checksum").
pub fn finish(acc: u64) -> u16 {
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// The sum of the IPv6 pseudo-header (RFC 8200, section 8.1): addresses
/// (`addresses` is bytes 8..40 of the IPv6 header), upper-layer length and
/// next header.
pub fn pseudo_ipv6(addresses: &[u8; 32], len: u32, next_header: u8) -> u64 {
    sum(addresses, u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 word by word, the way the RFC's example code does it.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u32::from(data[i]) << 8 | u32::from(data[i + 1]);
            acc = (acc & 0xffff) + (acc >> 16);
            i += 2;
        }
        if i < data.len() {
            acc += u32::from(data[i]) << 8;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn the_rfc_1071_example_sums_to_its_published_value() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
    }

    #[test]
    fn the_fast_sum_matches_the_word_by_word_reference_for_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(fold(sum(&data[..len], 0)), reference(&data[..len]), "len {len}");
        }
        let ones = vec![0xffu8; 65535];
        assert_eq!(fold(sum(&ones, 0)), reference(&ones));
    }

    #[test]
    fn a_zero_checksum_is_sent_as_all_ones() {
        assert_eq!(finish(0xffff), 0xffff);
        assert_eq!(finish(0), 0xffff);
        assert_eq!(finish(0x1234), !0x1234);
    }
}
