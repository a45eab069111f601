//! Babel's 16-bit modular sequence numbers.

//= https://www.rfc-editor.org/rfc/rfc8966#section-3.2.1
//~ Given two sequence numbers s1 and s2, the relation s1 is less than s2
//~ (s1 <_(modulo 2^16) s2) is defined by
//~
//~ s1 <_(modulo 2^16) s2 if and only if 0 < ((s2 - s1) MOD 2^16) < 32768

/// `a` is strictly older than `b`, modulo 2^16.
pub fn less(a: u16, b: u16) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 0x8000
}

/// `a` is strictly newer than `b`, modulo 2^16.
pub fn greater(a: u16, b: u16) -> bool {
    less(b, a)
}

/// `a` is as new as `b` or newer, modulo 2^16.
pub fn greater_or_equal(a: u16, b: u16) -> bool {
    a == b || greater(a, b)
}

/// `s + n`, modulo 2^16.
pub fn plus(s: u16, n: u16) -> u16 {
    s.wrapping_add(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_around_at_two_to_the_sixteen() {
        assert!(less(1, 2));
        assert!(less(0xFFFF, 0));
        assert!(less(0xFFF0, 5));
        assert!(!less(5, 0xFFF0));
        assert!(!less(7, 7));
        assert!(greater(0, 0xFFFF));
        assert!(greater_or_equal(9, 9));
        assert_eq!(plus(0xFFFF, 1), 0);
    }

    #[test]
    fn numbers_half_the_space_apart_are_not_less_than_each_other() {
        assert!(!less(0, 0x8000));
        assert!(less(0, 0x7FFF));
    }
}
