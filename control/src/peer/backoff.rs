//! Exponential, capped backoff with jitter for redialing a peer.
//!
//! Attempt `n` (0-based) waits `min(max, initial * 2^n)`, less up to a
//! quarter drawn from the injected entropy, so peers that failed together do
//! not retry in lockstep. A success resets the count.

use std::time::Duration;

/// The delay before redial attempt `attempt` (0-based); `jitter` is any
/// random `u32` (the delay loses `jitter mod 2^16 / 2^18` of itself, at most a quarter).
pub fn delay(initial: Duration, max: Duration, attempt: u32, jitter: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let full = initial.saturating_mul(factor).min(max);
    let cut = full.mul_f64(f64::from(jitter & 0xFFFF) / f64::from(1u32 << 18));
    full.saturating_sub(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_then_caps_and_jitter_only_shortens_by_a_quarter() {
        let max = Duration::from_secs(60);
        let plain: Vec<_> = (0..10).map(|n| delay(S, max, n, 0)).collect();
        assert_eq!(&plain[..7], &[1, 2, 4, 8, 16, 32, 60].map(Duration::from_secs));
        assert!(plain[7..].iter().all(|&d| d == max));
        assert_eq!(delay(S, max, u32::MAX, 0), max);
        for n in 0..12 {
            let d = delay(S, max, n, u32::MAX);
            assert!(d <= plain[n.min(9) as usize] && d >= plain[n.min(9) as usize] * 3 / 4, "attempt {n}: {d:?}");
        }
    }
}
