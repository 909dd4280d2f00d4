//! When a slot's previous block arrived, as the members saw it. Views open with time from that
//! arrival (see `votes::reachable_view`), each member by its own record. A member that got the
//! block late (a Byzantine proposer left it out of the block's rounds and push, or sent it an hour
//! later) would open the next slot's views that much later than the others, and a racer pushing
//! the others to their newest views could keep it out for as long as the chain had been quiet.
//! So a member that caught up, or that is asked for a view not open at it yet, asks the members
//! when the block arrived at them and adopts the (f+1)-th earliest of their answers (its own
//! among them) when that is earlier than its own: of any f+1 answers one is honest, so liars
//! cannot move it before some honest member saw the block, and views still open no faster than
//! time. (An honest member's clock that runs behind moves it earlier by as much: members' clocks
//! are assumed within the skew of `votes::REPORT_SLACK_VIEWS`, ten seconds.)

/// The arrival (Unix ms) a member whose own record says `own` adopts, given the arrivals
/// `reported` by other members of a roster with at most `faulty` Byzantine members (0: unknown,
/// ignored; one answer per member, the caller made sure).
pub(super) fn adopted_arrival(own: u64, reported: &[u64], faulty: usize) -> u64 {
    let mut all: Vec<u64> = reported.iter().copied().filter(|&at| at > 0).collect();
    all.push(own);
    all.sort_unstable();
    // The (f+1)-th earliest: at most f of the earlier ones are lies, so one honest arrival is
    // no later than it.
    all.get(faulty).map_or(own, |&at| at.min(own))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f_plus_first_earliest_arrival_is_adopted_when_earlier() {
        // Four members (f = 1): three got the block at 1,000, this one at 61,000.
        assert_eq!(adopted_arrival(61_000, &[1_000, 1_000, 1_000], 1), 1_000);
        // A liar claiming the block came at the epoch moves nothing past the honest ones.
        assert_eq!(adopted_arrival(61_000, &[1, 1_000, 1_000], 1), 1_000);
        // Alone, a liar (f = 1) cannot make this member's views open earlier.
        assert_eq!(adopted_arrival(61_000, &[1, 61_500, 62_000], 1), 61_000);
        // Seven members (f = 2): two liars at the epoch, the honest ones at 5,000 and later.
        assert_eq!(adopted_arrival(90_000, &[1, 1, 5_000, 6_000, 7_000, 8_000], 2), 5_000);
        // Never later than its own record; unknown answers (0) and too few answers change nothing.
        assert_eq!(adopted_arrival(1_000, &[50_000, 60_000, 70_000], 1), 1_000);
        assert_eq!(adopted_arrival(61_000, &[0, 0, 0], 1), 61_000);
        assert_eq!(adopted_arrival(61_000, &[], 1), 61_000);
    }
}
