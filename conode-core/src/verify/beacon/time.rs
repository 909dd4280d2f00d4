//! drand's round/time arithmetic (`common/time.go` in drand v2): round 1 is emitted at the genesis
//! time, round `r ≥ 1` at `genesis + (r − 1) · period`, and round 0 is the fixed genesis beacon.
//!
//! Everything is in whole seconds (drand hashes and schedules whole-second periods). All functions
//! are total: where drand's Go code would overflow or divide by zero, these return `None` or
//! saturate instead of panicking; for every realistic input (times below 2^53 s, periods ≥ 1 s)
//! they return exactly what drand returns.

/// What drand's `TimeOfRound` returns for a round whose time is out of range:
/// `i64::MAX − 2^36` (drand keeps this buffer so Go's `time.Unix` cannot overflow).
/// [`time_of_round`] returns `None` in exactly those cases.
pub const TIME_OF_ROUND_ERROR_VALUE: i64 = i64::MAX - (1i64 << 36);

/// UNIX time (seconds) at which `round` is due: `genesis` for rounds 0 and 1, then
/// `genesis + (round − 1) · period`.
///
/// `None` where drand returns [`TIME_OF_ROUND_ERROR_VALUE`]: when
/// `round ≥ u64::MAX >> (⌊log2(period + 1)⌋ + 2)` or when the result would exceed
/// `i64::MAX − 2^36` (also when it would overflow `i64`, where Go would wrap around).
pub fn time_of_round(period: u32, genesis: i64, round: u64) -> Option<i64> {
    if round == 0 {
        return Some(genesis);
    }
    let period = u64::from(period);
    // ⌊log2(period + 1)⌋; drand computes it with float64 Log2, which is exact at these magnitudes.
    let period_bits = (period + 1).ilog2();
    if round >= u64::MAX >> (period_bits + 2) {
        return None;
    }
    let delta = (round - 1).checked_mul(period)?;
    let delta = i64::try_from(delta).ok()?;
    let val = genesis.checked_add(delta)?;
    if val > TIME_OF_ROUND_ERROR_VALUE {
        return None;
    }
    Some(val)
}

/// drand's `NextRound`: the next round to be emitted after `now` and its UNIX time.
///
/// Before genesis this is `(1, genesis)`. From genesis on, with `k = ⌊(now − genesis) / period⌋`
/// whole periods elapsed, the current round is `k + 1` and this returns
/// `(k + 2, genesis + (k + 1) · period)`.
///
/// A period of 0 is not a valid chain (drand divides by zero); this then returns `(1, genesis)`.
/// Results saturate at `u64::MAX` / `i64::MAX` instead of wrapping.
pub fn next_round(now: i64, period: u32, genesis: i64) -> (u64, i64) {
    if now < genesis || period == 0 {
        return (1, genesis);
    }
    // now ≥ genesis, so this is now − genesis, without overflow.
    let from_genesis = now.abs_diff(genesis);
    let period = u64::from(period);
    let next = (from_genesis / period).saturating_add(1);
    let next_time = i128::from(genesis) + i128::from(next) * i128::from(period);
    let next_time = i64::try_from(next_time).unwrap_or(i64::MAX);
    (next.saturating_add(1), next_time)
}

/// drand's `CurrentRound`: the round that is active at `now` (the latest one due).
///
/// Note drand's quirk, kept here: before genesis this returns **1**, not 0 (drand's `NextRound`
/// answers 1 there and `CurrentRound` passes it through). Use [`latest_round`] for "0 before
/// genesis".
pub fn current_round(now: i64, period: u32, genesis: i64) -> u64 {
    let (next, _) = next_round(now, period, genesis);
    if next <= 1 {
        next
    } else {
        next - 1
    }
}

/// The latest round whose time has come at `now`: 0 before genesis (nothing emitted yet; round 0
/// is the genesis beacon), otherwise the same as [`current_round`].
pub fn latest_round(now: i64, period: u32, genesis: i64) -> u64 {
    if now < genesis {
        0
    } else {
        current_round(now, period, genesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // League of Entropy chains (../shared/vectors/drand.json).
    const MAINNET_GENESIS: i64 = 1595431050;
    const MAINNET_PERIOD: u32 = 30;
    const QUICKNET_GENESIS: i64 = 1692803367;
    const QUICKNET_PERIOD: u32 = 3;

    #[test]
    fn time_of_round_matches_vectors() {
        // quicknet round 1000 = genesis + 999 · 3
        assert_eq!(time_of_round(QUICKNET_PERIOD, QUICKNET_GENESIS, 1000), Some(1692806364));
        assert_eq!(time_of_round(QUICKNET_PERIOD, QUICKNET_GENESIS, 123), Some(QUICKNET_GENESIS + 122 * 3));
        // mainnet round 72785 = genesis + 72784 · 30
        assert_eq!(time_of_round(MAINNET_PERIOD, MAINNET_GENESIS, 72785), Some(1597614570));
    }

    #[test]
    fn time_of_round_small_rounds() {
        assert_eq!(time_of_round(30, 1000, 0), Some(1000));
        assert_eq!(time_of_round(30, 1000, 1), Some(1000));
        assert_eq!(time_of_round(30, 1000, 2), Some(1030));
        assert_eq!(time_of_round(30, 1000, 3), Some(1060));
        // negative genesis is just arithmetic
        assert_eq!(time_of_round(10, -100, 5), Some(-60));
    }

    #[test]
    fn time_of_round_errors_as_drand() {
        // drand's own cases (common/time_test.go)
        let start = 1577836800; // 2020-01-01
        assert!(time_of_round(1, start, 1024).unwrap() < time_of_round(1, start, i32::MAX as u64).unwrap());
        assert_eq!(time_of_round(1, start, u64::MAX >> 3), None);
        assert_eq!(time_of_round(3, start, (u64::MAX >> 3) - 1), None);
        assert_eq!(time_of_round(1, 1000, u64::MAX >> 2), None);
        assert_eq!(time_of_round(1, TIME_OF_ROUND_ERROR_VALUE - 5, 100), None);
        assert_eq!(time_of_round(1, TIME_OF_ROUND_ERROR_VALUE - 5, 6), Some(TIME_OF_ROUND_ERROR_VALUE));
        // the bound: period 1 → ⌊log2 2⌋ = 1 → rounds ≥ u64::MAX >> 3 fail, one below passes
        assert!(time_of_round(1, 0, (u64::MAX >> 3) - 1).is_some());
        // large periods, huge rounds, extreme genesis: never panics
        for &p in &[0u32, 1, 2, 3, 30, 3600, u32::MAX] {
            for &g in &[i64::MIN, -1, 0, 1, i64::MAX] {
                for &r in &[0u64, 1, 2, u32::MAX as u64, u64::MAX >> 20, u64::MAX - 1, u64::MAX] {
                    let _ = time_of_round(p, g, r);
                }
            }
        }
        assert_eq!(time_of_round(30, i64::MAX, 1), None);
        assert_eq!(time_of_round(30, i64::MIN, 2), Some(i64::MIN + 30));
    }

    #[test]
    fn next_round_as_drand() {
        // drand's own cases (common/time_test.go)
        assert_eq!(next_round(500, 30, 1000), (1, 1000));
        assert_eq!(next_round(1000, 10, 1000), (2, 1010));
        assert_eq!(next_round(1025, 10, 1000), (4, 1030));
        let genesis = 1_700_000_000;
        assert_eq!(next_round(genesis + 1, 30, genesis).0, 2);
        // the Go test's fake-clock walk with period 2
        assert_eq!(next_round(genesis, 2, genesis), (2, genesis + 2));
        assert_eq!(next_round(genesis + 1, 2, genesis), (2, genesis + 2));
        assert_eq!(next_round(genesis + 2, 2, genesis), (3, genesis + 4));
        assert_eq!(time_of_round(2, genesis, 3), Some(genesis + 4));
    }

    #[test]
    fn current_round_boundaries() {
        let (p, g) = (QUICKNET_PERIOD, QUICKNET_GENESIS);
        // before genesis: drand says 1, latest_round says 0
        assert_eq!(current_round(g - 1, p, g), 1);
        assert_eq!(current_round(i64::MIN, p, g), 1);
        assert_eq!(latest_round(g - 1, p, g), 0);
        assert_eq!(latest_round(i64::MIN, p, g), 0);
        // exactly at genesis: round 1
        assert_eq!(current_round(g, p, g), 1);
        assert_eq!(latest_round(g, p, g), 1);
        assert_eq!(current_round(g + 2, p, g), 1);
        assert_eq!(current_round(g + 3, p, g), 2);
        // around quicknet round 1000
        let t1000 = time_of_round(p, g, 1000).unwrap();
        assert_eq!(current_round(t1000 - 1, p, g), 999);
        assert_eq!(current_round(t1000, p, g), 1000);
        assert_eq!(current_round(t1000 + 2, p, g), 1000);
        assert_eq!(current_round(t1000 + 3, p, g), 1001);
        assert_eq!(next_round(t1000, p, g), (1001, t1000 + 3));
        assert_eq!(next_round(t1000 - 1, p, g), (1000, t1000));
        // mainnet round 72785
        let (p, g) = (MAINNET_PERIOD, MAINNET_GENESIS);
        let t = time_of_round(p, g, 72785).unwrap();
        assert_eq!(current_round(t, p, g), 72785);
        assert_eq!(current_round(t - 1, p, g), 72784);
        assert_eq!(current_round(t + 29, p, g), 72785);
        assert_eq!(current_round(t + 30, p, g), 72786);
    }

    #[test]
    fn round_time_roundtrip() {
        // drand's TestRoundAt: CurrentRound(TimeOfRound(r)) == r for r ≥ 1
        for &(p, g) in &[(30u32, MAINNET_GENESIS), (3, QUICKNET_GENESIS), (1, 0), (7, -1000)] {
            for r in 1..200u64 {
                let t = time_of_round(p, g, r).unwrap();
                assert_eq!(current_round(t, p, g), r);
                assert_eq!(latest_round(t, p, g), r);
                assert_eq!(next_round(t, p, g), (r + 1, time_of_round(p, g, r + 1).unwrap()));
                if r > 1 {
                    assert_eq!(current_round(t - 1, p, g), r - 1);
                }
            }
        }
    }

    #[test]
    fn never_panics_on_extremes() {
        for &p in &[0u32, 1, 3, u32::MAX] {
            for &g in &[i64::MIN, -1, 0, 1, i64::MAX] {
                for &now in &[i64::MIN, -1, 0, 1, i64::MAX] {
                    let _ = next_round(now, p, g);
                    let _ = current_round(now, p, g);
                    let _ = latest_round(now, p, g);
                }
            }
        }
        assert_eq!(next_round(i64::MAX, 1, i64::MIN), (u64::MAX, i64::MAX));
        assert_eq!(current_round(5000, 0, 1000), 1);
    }
}
