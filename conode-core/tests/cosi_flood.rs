//! A roster member that floods a leaf with announcements its hook approves: the leaf computes on
//! its runtime's workers only what the node-wide budget allows (`inline_signing`) and signs the
//! rest on the crypto pool, and every announcement is still signed. And a root that leads many
//! rounds at once gives its leaves time for all of them, while a root asked for rounds faster
//! than it completes them makes the later ones wait their turn. In a file of its own, one test
//! at a time: each takes both cores for a second or more, which would stretch the rounds beside
//! it.

mod support;

use conode_core::cluster::LocalCluster;
use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::BlsPublicKey;
use conode_core::services::cosi::{self, CosiError, CosiService, PartialSignatureCounts, Policy, SignOutcome};
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: each takes both cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Rounds the flooder announces at once: far beyond the budget's burst of 64.
const ROUNDS: u64 = 600;
/// Per-level timeout of the rounds (the leaf deadlines follow the answer times below it): the
/// crypto pool of this one process is hundreds of signatures behind during the flood.
const LEVEL: Duration = Duration::from_secs(10);

/// `rounds` rounds that `root` leads at once over all of `roster` (open signing, every member
/// required), each statement `"{label} {i}"`; their statements and outcomes.
async fn sign_at_once(
    root: &CosiService,
    roster: &Roster,
    label: &str,
    rounds: u64,
) -> Vec<(Vec<u8>, Result<SignOutcome, CosiError>)> {
    let all = Policy::Threshold(roster.servers.len());
    futures_util::future::join_all((0..rounds).map(|i| async move {
        let msg = format!("{label} {i}").into_bytes();
        let out = root.sign_with_timeout(roster, &msg, cosi::OPEN_SIGNING_PURPOSE, &[], all, LEVEL).await;
        (msg, out)
    }))
    .await
}

/// A cluster of `n` whose node 0 led a few rounds one after the other (the deadlines follow the
/// quick answers they saw); its roster and node 0's service.
fn warmed_up(n: usize) -> (LocalCluster, Roster, CosiService) {
    let cluster = LocalCluster::new(n).unwrap();
    let roster = cluster.roster().clone();
    let root = cluster.node(0).cosi().unwrap();
    for i in 0..5 {
        let outs = cluster.runtime().block_on(sign_at_once(&root, &roster, &format!("alone {i}"), 1));
        every_member_signed(&roster, outs, "alone");
    }
    (cluster, roster, root)
}

/// Checks that every round signed with every member of `roster`, its signature valid.
fn every_member_signed(roster: &Roster, outs: Vec<(Vec<u8>, Result<SignOutcome, CosiError>)>, what: &str) {
    let keys: Vec<BlsPublicKey> = roster.servers.iter().map(|s| *s.service_key(COSI_SERVICE).unwrap()).collect();
    let all = Policy::Threshold(keys.len());
    for (msg, out) in outs {
        let out = out.unwrap_or_else(|e| panic!("{what}: round {:?}: {e}", String::from_utf8_lossy(&msg)));
        assert_eq!(out.report.signed.len(), keys.len(), "{what}: {:?}", out.report);
        cosi::verify(&msg, &out.signature.to_bytes(), &out.mask, &keys, all).unwrap();
    }
}

#[test]
fn a_member_flooding_approved_announcements_gets_the_workers_only_within_their_budget() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Node 0 announces hundreds of rounds at once to node 1, a leaf whose hook (open signing) is
    // quick. The leaf signs every announcement, on its workers within the budget (a burst of
    // 64, then 400 a second) and on the pool beyond. A round that node 1 leads meanwhile
    // completes.
    let cluster = LocalCluster::new(2).unwrap();
    let roster = cluster.roster().clone();
    let (flooder, leaf) = (cluster.node(0).cosi().unwrap(), cluster.node(1).cosi().unwrap());
    let before = leaf.partial_signatures();
    let given = |c: PartialSignatureCounts| {
        (c.on_worker - before.on_worker, c.on_pool_after_check - before.on_pool_after_check)
    };
    let started = Instant::now();
    let (flood, (own, took)) = cluster.runtime().block_on(async {
        let flood = sign_at_once(&flooder, &roster, "flood", ROUNDS);
        let own_round = async {
            let t = Instant::now();
            let out = leaf
                .sign_with_timeout(&roster, b"meanwhile", cosi::OPEN_SIGNING_PURPOSE, &[], Policy::Threshold(2), LEVEL)
                .await;
            (out, t.elapsed())
        };
        futures_util::join!(flood, own_round)
    });
    support::wait_until(Duration::from_secs(30), "the leaf signs every announcement", || {
        let (on_worker, on_pool) = given(leaf.partial_signatures());
        on_worker + on_pool >= ROUNDS
    });
    let elapsed = started.elapsed();
    // Every round completes: the flooder's leaf deadlines grow with the rounds it leads.
    every_member_signed(&roster, flood, "flood");
    let own = own.unwrap_or_else(|e| panic!("node 1's own round during the flood ({took:?}): {e}"));
    assert_eq!(own.report.signed, vec![0, 1], "node 1's own round during the flood");
    let after = leaf.partial_signatures();
    let (on_worker, on_pool) = given(after);
    assert_eq!(on_worker + on_pool, ROUNDS, "one partial per announcement: {after:?}");
    assert_eq!(after.on_pool_while_checking, before.on_pool_while_checking, "a quick hook is checked first");
    // The budget: 64 at once, then 400 a second (one more for the clock's rounding). Within
    // (600 - 64) / 400 = 1.3 s, that is fewer than the 600 announcements: the pool took the rest.
    let budget = 64 + (400.0 * elapsed.as_secs_f64()) as u64 + 1;
    assert!(on_worker <= budget, "{on_worker} signatures on the workers in {elapsed:?} (budget {budget})");
    println!(
        "flood of {ROUNDS} rounds in {elapsed:?}: {on_worker} signed on the workers, \
         {on_pool} on the pool; own round {took:?}"
    );
}

#[test]
fn a_root_leading_many_rounds_at_once_waits_for_its_leaves_long_enough() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // 100 rounds at once over 16 members in one process: 1,600 signatures, most of a second of
    // both cores, far longer than the 200 ms a leaf gets when one round runs. The leaf
    // deadlines grow with the rounds the root leads, counted before any of them sets its
    // deadlines, so every member signs every round.
    const AT_ONCE: u64 = 100;
    let (cluster, roster, root) = warmed_up(16);
    let rt = cluster.runtime();
    let t = Instant::now();
    let outs = rt.block_on(sign_at_once(&root, &roster, "at once", AT_ONCE));
    let took = t.elapsed();
    every_member_signed(&roster, outs, &format!("{AT_ONCE} rounds at once ({took:?})"));
    println!("{AT_ONCE} rounds at once over 16 members in {took:?}");
}

/// A root asked for rounds one by one, far faster than it completes them (5,000 a second over
/// 16 members, where it completes a few hundred): the rounds beyond the work it leads at once
/// wait their turn, so the rounds in flight keep the deadlines they set. None fails with members
/// timed out (when every round started as it came and set its deadlines for the few it saw,
/// 23 to 497 of 500 did); a round that cannot start within its level timeout is refused as busy,
/// with a time to try again.
#[test]
fn rounds_asked_for_faster_than_they_complete_wait_their_turn() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const ROUNDS: u64 = 400;
    let (cluster, roster, root) = warmed_up(16);
    let rt = cluster.runtime();
    let t = Instant::now();
    let outs = rt.block_on(async {
        let mut pace = tokio::time::interval(Duration::from_micros(200));
        let mut rounds = Vec::new();
        for i in 0..ROUNDS {
            pace.tick().await;
            let (root, roster) = (root.clone(), roster.clone());
            rounds.push(tokio::spawn(async move {
                let msg = format!("one by one {i}").into_bytes();
                let all = Policy::Threshold(roster.servers.len());
                let out = root.sign(&roster, &msg, cosi::OPEN_SIGNING_PURPOSE, &[], all).await;
                (msg, out)
            }));
        }
        futures_util::future::join_all(rounds).await
    });
    let took = t.elapsed();
    let (mut signed, mut busy) = (Vec::new(), 0);
    for out in outs {
        match out.unwrap() {
            (_, Err(CosiError::Busy { retry_after, .. })) => {
                assert!(retry_after > Duration::ZERO);
                busy += 1;
            }
            out => signed.push(out),
        }
    }
    // Every round that ran signed with every member; on a loaded machine the last ones may not
    // get their turn within the 5 s level timeout, but a hundred rounds take well under one.
    let ran = signed.len();
    every_member_signed(&roster, signed, &format!("{ROUNDS} rounds one by one ({took:?})"));
    assert!(ran >= 100, "only {ran} of {ROUNDS} rounds ran ({busy} busy) in {took:?}");
    let network = cluster.node(0).network().unwrap();
    let health = network.health();
    assert!(roster.servers[1..].iter().all(|s| health.down(&s.public).is_none()), "a member was marked down");
    println!("{ROUNDS} rounds one by one over 16 members in {took:?}: {ran} signed, {busy} busy");
}

/// A Byzantine member floods one honest member with announcements it approves (open signing),
/// keeping about a thousand in flight for two seconds: a backlog of signatures longer than a
/// leaf's deadline. The honest rounds led meanwhile still get the flooded member's partial in
/// time: the crypto pool takes turns between those who asked (the flooder gets its share, not
/// the whole queue), so one faulty member cannot make an honest one look down, which would take
/// two members out of the rounds for the price of one.
#[test]
fn a_member_flooding_another_does_not_make_it_miss_the_honest_rounds() {
    use conode_core::services::cosi::messages::{Announce, Member};
    use prost::Message;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const IN_FLIGHT: usize = 1000;
    const FLOOD_FOR: Duration = Duration::from_secs(2);
    let (cluster, roster, honest_root) = warmed_up(4);
    let rt = cluster.runtime();
    let flooder = cluster.node(3).network().unwrap();
    let victim = roster.servers[1].clone();
    let wire: Vec<Member> = roster
        .servers
        .iter()
        .map(|s| Member {
            public: s.public.as_bytes().to_vec(),
            address: s.address.to_string(),
            cosi_public: s.service_key(COSI_SERVICE).unwrap().to_bytes().to_vec(),
        })
        .collect();
    let announce = |i: usize| {
        Announce {
            roster: wire.clone(),
            root: 3,
            statement: format!("flood {i}").into_bytes(),
            purpose: cosi::OPEN_SIGNING_PURPOSE.into(),
            timeout_ms: 30_000,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let (honest, flood_answers) = rt.block_on(async {
        let flood = async {
            let started = Instant::now();
            let sent = std::sync::atomic::AtomicUsize::new(0);
            let one_after_another = || async {
                let mut answered = 0;
                while started.elapsed() < FLOOD_FOR {
                    let i = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let r = flooder
                        .request(
                            &victim,
                            COSI_SERVICE,
                            cosi::PROTOCOL_ANNOUNCE,
                            &i.to_le_bytes(),
                            announce(i),
                            Duration::from_secs(30),
                        )
                        .await;
                    answered += usize::from(r.is_ok());
                }
                answered
            };
            futures_util::future::join_all((0..IN_FLIGHT).map(|_| one_after_another())).await.into_iter().sum::<usize>()
        };
        let honest_rounds = async {
            // Once the flood has built up its backlog.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut outs = Vec::new();
            while outs.len() < 10 {
                let msg = format!("honest {}", outs.len());
                let out = honest_root
                    .sign(&roster, msg.as_bytes(), cosi::OPEN_SIGNING_PURPOSE, &[], Policy::Threshold(3))
                    .await;
                outs.push((msg.into_bytes(), out));
            }
            outs
        };
        let (flood, honest) = futures_util::join!(flood, honest_rounds);
        (honest, flood)
    });
    assert!(flood_answers > IN_FLIGHT, "the flood was answered: {flood_answers} announcements signed");
    for (msg, out) in &honest {
        let out = out.as_ref().unwrap_or_else(|e| panic!("honest round {:?}: {e}", String::from_utf8_lossy(msg)));
        assert!(out.report.signed.contains(&1), "the flooded member missed an honest round: {:?}", out.report);
    }
    println!(
        "{flood_answers} flood announcements signed; the flooded member signed all {} honest rounds",
        honest.len()
    );
}

/// A root told to stop while hundreds of rounds wait for their turn (and a few dozen run) ends
/// every one of them at once with `Stopped`: none waits out its level timeout, none is refused as
/// busy, and none blames a member for the root's own shutdown. The node stops within its grace.
#[test]
fn a_root_stopping_while_rounds_wait_their_turn_ends_them_all_at_once() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const ROUNDS: usize = 300;
    let (mut cluster, roster, root) = warmed_up(16);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rounds: Vec<_> = (0..ROUNDS)
        .map(|i| {
            let (root, roster, done) = (root.clone(), roster.clone(), done.clone());
            cluster.runtime().spawn(async move {
                let msg = format!("cut short {i}").into_bytes();
                let all = Policy::Threshold(roster.servers.len());
                let out = root.sign_with_timeout(&roster, &msg, cosi::OPEN_SIGNING_PURPOSE, &[], all, LEVEL).await;
                done.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                (msg, out, Instant::now())
            })
        })
        .collect();
    // Once a few rounds completed (the others run or wait their turn), node 0 stops.
    support::wait_until(Duration::from_secs(30), "5 rounds completed", || {
        done.load(std::sync::atomic::Ordering::Acquire) >= 5
    });
    let stopping = Instant::now();
    cluster.stop(0).unwrap();
    let stopped_in = stopping.elapsed();
    let outs = cluster.runtime().block_on(futures_util::future::join_all(rounds));
    let (mut signed, mut ended) = (Vec::new(), 0);
    let mut last_end = Duration::ZERO;
    for out in outs {
        let (msg, out, at) = out.unwrap();
        match out {
            Err(CosiError::Stopped) => {
                ended += 1;
                last_end = last_end.max(at.saturating_duration_since(stopping));
            }
            Err(e) => panic!("round {:?} ended with {e} instead of `Stopped`", String::from_utf8_lossy(&msg)),
            Ok(o) => signed.push((msg, Ok(o))),
        }
    }
    println!(
        "{} rounds signed, {ended} ended by the stop (the last {last_end:?} after it); stop took {stopped_in:?}",
        signed.len()
    );
    every_member_signed(&roster, signed, "before the stop");
    assert!(ended > ROUNDS / 2, "only {ended} of {ROUNDS} rounds were still waiting or running at the stop");
    assert!(stopped_in < Duration::from_secs(3), "the stop took {stopped_in:?}");
    assert!(last_end < Duration::from_secs(1), "a round ended {last_end:?} after the stop");
}
