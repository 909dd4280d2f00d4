//! Byzantine safety of skipchains under contention: the owner sends conflicting appends for the
//! same index to different members at once, while members crash and restart (on one chain, and
//! on several chains whose appends share batched rounds). No fork may appear
//! (one block per index on every member, one forward link per source block and level, every
//! acknowledged block is the chain's block at its index), and the chain is never stuck once the
//! contention stops.
//!
//! Randomized and seeded: `CONODE_SAFETY_SEED` replays a run (the seed is printed on failure),
//! `CONODE_SAFETY_TRIALS` sets the number of trials (CI default 40; the long mode is 200 or more).

mod support;

use conode_core::cluster::LocalCluster;
use conode_core::config::Roster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::cosi::{CosiFault, CosiOptions};
use conode_core::services::skipchain::messages::{
    first_view_message, prepare_message, Append, FirstViewStatement, Proposal, SlotQuery, SlotState,
};
use conode_core::services::skipchain::{
    owner_of_view, CatchUpFault, SkipchainError, SkipchainService, MAX_VIEW, PREPARE_PURPOSE, RACES_TO_NEWEST_VIEW,
    SKIPCHAIN_SERVICE, VIEW_WINDOW,
};
use conode_core::verify::cosi::{Mask, Policy};
use conode_core::verify::skipchain::{level_distance, verify_link, SkipBlock};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn svc(c: &LocalCluster, i: usize) -> Option<SkipchainService> {
    c.node(i).skipchain().ok()
}

/// Loopback rounds answer in milliseconds: a short per-level wait keeps rounds with a stopped
/// member quick (the default suits real networks).
fn quick_rounds(c: &LocalCluster, i: usize) {
    if let Ok(cosi) = c.node(i).cosi() {
        cosi.set_options(CosiOptions { level_timeout: Duration::from_millis(300) });
    }
}

fn restart(c: &mut LocalCluster, i: usize) {
    c.restart(i).unwrap();
    quick_rounds(c, i);
}

#[test]
fn conflicting_appends_with_crashes_never_fork_and_never_wedge() {
    seeded("safety", |seed, trials| run(seed, trials, None, 1));
}

#[test]
fn a_byzantine_member_that_signs_anything_cannot_make_a_fork() {
    seeded("Byzantine safety", |seed, trials| run(seed, trials, Some(3), 1));
}

/// The same storm on four chains at once: appends of different chains that meet at a member share
/// batched rounds, which hold conflicting appends and which members crash in the middle of. As
/// many trials as the one-chain storm: whether appends meet at a member is a matter of timing
/// (10 trials saw 0 to 7 batched rounds; with 0 the run checks nothing of batching and fails).
#[test]
fn conflicting_appends_of_many_chains_in_batched_rounds_with_crashes_never_fork() {
    seeded("batched safety", |seed, trials| run(seed, trials, None, 4));
}

/// With a member stopped (f = 1 of 4), conflicting appends for one index, sent to the three
/// others at once, settle within a fraction of a second. When their votes split, the proposers
/// ask every member what it prepared, and the stopped member refuses that query at once. The
/// query used to wait behind other requests backing off from the stopped member, up to its 2 s
/// timeout: every contended append with a member down cost seconds.
#[test]
fn with_a_member_stopped_contended_appends_settle_quickly() {
    const TRIALS: u64 = 8;
    const BOUND: Duration = Duration::from_millis(1500);
    let n = 4;
    let mut c = LocalCluster::new(n).unwrap();
    (0..n).for_each(|i| quick_rounds(&c, i));
    let owner = IdentityKeyPair::generate();
    let g = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    c.stop(1).unwrap();
    let rt = c.runtime().handle().clone();
    let live = [0, 2, 3];
    let latest = |c: &LocalCluster| live.iter().filter_map(|&i| svc(c, i)?.store().latest_index(&g)).max().unwrap_or(0);
    let mut slowest = Duration::ZERO;
    for trial in 0..TRIALS {
        let next = latest(&c) + 1;
        let t = Instant::now();
        let calls: Vec<_> = live
            .iter()
            .map(|&at| {
                let data = format!("trial {trial} via {at}").into_bytes();
                let append = Append::signed(&owner, &g, next, data, None).unwrap();
                let s = svc(&c, at).unwrap();
                rt.spawn(async move { s.append(append).await })
            })
            .collect();
        rt.block_on(futures_util::future::join_all(calls)).into_iter().for_each(|r| drop(r.unwrap()));
        let took = t.elapsed();
        slowest = slowest.max(took);
        assert!(took < BOUND, "trial {trial}: the conflicting appends took {took:?}");
        // The index is taken (acknowledged to one of the clients, or stored by a member soon).
        support::wait_until(Duration::from_secs(5), &format!("trial {trial}: index {next} taken"), || {
            latest(&c) >= next
        });
    }
    eprintln!("{TRIALS} trials of conflicting appends with a member stopped: the slowest took {slowest:?}");
}

/// Runs `test` with the seed and trial count of the environment (or a random seed and the CI
/// default), printing both when it fails so that the run can be replayed.
fn seeded(what: &str, test: impl FnOnce(u64, u64) + std::panic::UnwindSafe) {
    let seed = env_u64("CONODE_SAFETY_SEED").unwrap_or_else(rand::random);
    let trials = env_u64("CONODE_SAFETY_TRIALS").unwrap_or(20);
    if let Err(e) = std::panic::catch_unwind(move || test(seed, trials)) {
        eprintln!("{what} test failed with CONODE_SAFETY_SEED={seed} CONODE_SAFETY_TRIALS={trials}");
        std::panic::resume_unwind(e);
    }
}

/// `byzantine`: a member that signs every proposal and hides its locks from proposers' slot
/// queries (it then uses up the f = 1 faults, so no member crashes). `chains` chains are
/// appended to at once; with more than one, members act as proposers of several chains at a time
/// and batch their rounds.
fn run(seed: u64, trials: u64, byzantine: Option<usize>, chains: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = 4;
    let mut c = LocalCluster::new(n).unwrap();
    (0..n).for_each(|i| quick_rounds(&c, i));
    if let Some(b) = byzantine {
        c.node(b).skipchain().unwrap().set_signs_anything(true);
    }
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let geneses: Vec<Vec<u8>> = (0..chains)
        .map(|k| c.create_chain(0, vec![owner.public()], format!("genesis {k}").into_bytes()).unwrap().hash)
        .collect();
    // (chain, index) -> hash of every block some member acknowledged to the client.
    let mut acknowledged: BTreeMap<(usize, u64), Vec<u8>> = BTreeMap::new();
    let mut down: Option<usize> = None;
    let mut conflicts = 0u64;
    // Batched rounds led by members, counted before a member's crash resets its count.
    let batched = |c: &LocalCluster, i: usize| svc(c, i).map_or(0, |s| s.batched_rounds().0);
    let mut batched_rounds = 0;
    let mut slowest = Duration::ZERO;
    for trial in 0..trials {
        let trial_started = Instant::now();
        // Crash or bring back one member now and then (at most f = 1 down for n = 4). Half of the
        // crashes come in the middle of the trial's appends: as soon as the first of them ends,
        // while the others are in their rounds (batched ones among them).
        let mut crash_mid_trial = None;
        if byzantine.is_none() && rng.gen_bool(0.15) {
            match down.take() {
                Some(i) => restart(&mut c, i),
                None if rng.gen_bool(0.5) => crash_mid_trial = Some(rng.gen_range(0..n)),
                None => {
                    let i = rng.gen_range(0..n);
                    batched_rounds += batched(&c, i);
                    c.stop(i).unwrap();
                    down = Some(i);
                }
            }
        }
        let running: Vec<usize> = (0..n).filter(|i| Some(*i) != down).collect();
        // Two or three appends for the same index of each chain, different data, to random
        // members at once.
        // With several chains, half of the appends go through one gateway member of the trial,
        // where appends of different chains meet and batch.
        let gateway = running[rng.gen_range(0..running.len())];
        let mut calls = Vec::new();
        for (k, g) in geneses.iter().enumerate() {
            let next = running.iter().filter_map(|&i| svc(&c, i)?.store().latest_index(g)).max().unwrap_or(0) + 1;
            for j in 0..rng.gen_range(2..=3) {
                let at =
                    if chains > 1 && rng.gen_bool(0.5) { gateway } else { running[rng.gen_range(0..running.len())] };
                let data = format!("trial {trial} chain {k} proposal {j}").into_bytes();
                let append = Append::signed(&owner, g, next, data, None).unwrap();
                let s = svc(&c, at).unwrap();
                calls.push(rt.spawn(async move { (k, s.append(append).await) }));
            }
        }
        let mut results = Vec::new();
        if let Some(i) = crash_mid_trial {
            let (first, _, others) = rt.block_on(futures_util::future::select_all(calls));
            results.push(first.unwrap());
            batched_rounds += batched(&c, i);
            c.stop(i).unwrap();
            down = Some(i);
            calls = others;
        }
        results.extend(rt.block_on(futures_util::future::join_all(calls)).into_iter().map(|r| r.unwrap()));
        slowest = slowest.max(trial_started.elapsed());
        for (k, r) in results {
            match r {
                Ok(block) => {
                    let prior = acknowledged.insert((k, block.index), block.hash.clone());
                    if let Some(prior) = prior {
                        assert_eq!(
                            prior, block.hash,
                            "two different blocks acknowledged at index {} of chain {k}",
                            block.index
                        );
                    }
                }
                Err(e) => {
                    if e.to_string().contains("conflict") {
                        conflicts += 1;
                    }
                }
            }
        }
    }
    // Contention over: every member back, and the chains must still move.
    if let Some(i) = down.take() {
        restart(&mut c, i);
    }
    let mut blocks = 0;
    for (k, g) in geneses.iter().enumerate() {
        let last = after_the_storm(&c, &owner, g);
        let prior = acknowledged.insert((k, last.index), last.hash.clone());
        assert!(prior.is_none_or(|p| p == last.hash), "two different blocks acknowledged at index {}", last.index);
        let last = last.index;
        let acked: BTreeMap<u64, Vec<u8>> =
            acknowledged.iter().filter(|((chain, _), _)| *chain == k).map(|((_, i), h)| (*i, h.clone())).collect();
        check_no_fork(&c, g, last, &acked);
        blocks += last + 1;
    }
    // Evidence (a Byzantine member that prepares every proposal may be caught) never names an
    // honest member.
    for i in 0..n {
        for member in svc(&c, i).unwrap().equivocations().keys() {
            let accused = c.roster().servers.iter().position(|m| &m.public.to_hex() == member);
            assert!(accused.is_some() && accused == byzantine, "member {member} accused (Byzantine: {byzantine:?})");
        }
        batched_rounds += batched(&c, i);
    }
    // A replay with very few trials may see no batched round: that says nothing of safety.
    if chains > 1 && trials >= 4 {
        assert!(batched_rounds > 0, "no batched round in {trials} trials of {chains} chains");
    }
    eprintln!(
        "safety: seed {seed}, {trials} trials, {chains} chains of {blocks} blocks in all, {} acknowledged, \
         {conflicts} conflicts reported, {batched_rounds} batched rounds, slowest trial {slowest:?}",
        acknowledged.len()
    );
}

/// Appends one more block to chain `g` once the storm is over (the chain must not be stuck) and
/// waits for every member to hold it; returns it as acknowledged.
fn after_the_storm(c: &LocalCluster, owner: &IdentityKeyPair, g: &[u8]) -> SkipBlock {
    let (n, rt) = (c.roster().len(), c.runtime().handle().clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let latest = (0..n).filter_map(|i| svc(c, i)?.store().latest_index(g)).max().unwrap_or(0);
        match c.append(0, owner, g, b"after the storm".to_vec()) {
            Ok(b) => break b,
            Err(e) => {
                assert!(Instant::now() < deadline, "the chain is stuck at {latest}: {e}");
                // Node 0 may be behind after its restart: let it catch up from a member.
                let peer = c.roster().servers[1].clone();
                let _ = rt.block_on(svc(c, 0).unwrap().catch_up(g, &peer));
            }
        }
    };
    for i in 0..n {
        let s = svc(c, i).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.store().latest_index(g) < Some(last.index) {
            let peer = c.roster().servers[(i + 1) % n].clone();
            let _ = rt.block_on(s.catch_up(g, &peer));
            assert!(Instant::now() < deadline, "member {i} did not reach block {}", last.index);
        }
    }
    last
}

/// Every member holds the same block at every index of chain `g` up to `last`, every acknowledged
/// block is the chain's block at its index, and there is one valid forward link per source and
/// level, pointing at the chain's block.
fn check_no_fork(c: &LocalCluster, g: &[u8], last: u64, acknowledged: &BTreeMap<u64, Vec<u8>>) {
    let n = c.roster().len();
    let reference = svc(c, 0).unwrap();
    for index in 0..=last {
        let hash = reference.store().block_at(g, index).map(|b| b.hash).unwrap();
        for i in 1..n {
            let other = svc(c, i).unwrap().store().block_at(g, index).map(|b| b.hash);
            assert_eq!(other.as_ref(), Some(&hash), "member {i} holds another block at index {index}: fork");
        }
        if let Some(acked) = acknowledged.get(&index) {
            assert_eq!(acked, &hash, "acknowledged block at index {index} is not the chain's block");
        }
    }
    for index in 0..=last {
        let src = reference.store().block_at(g, index).unwrap();
        for (level, link) in src.forward_links.iter().enumerate().filter(|(_, l)| !l.to.is_empty()) {
            let target_index = index + level_distance(src.base_height, level);
            let target = reference.store().block_at(g, target_index).unwrap();
            assert_eq!(link.to, target.hash, "level {level} link of block {index} points off the chain");
            verify_link(&src, &target, link, Policy::Default).unwrap();
        }
    }
}

/// Beyond the fault bound (2 Byzantine members of 4) a fork can be made — but then the members
/// that signed both branches are identified with evidence, and no honest member is accused.
#[test]
fn beyond_f_a_fork_names_the_members_that_signed_both_branches() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    for b in [2, 3] {
        c.node(b).skipchain().unwrap().set_signs_anything(true);
    }
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let mut genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    let honest: Vec<String> = [0, 1].iter().map(|&i| c.roster().servers[i].public.to_hex()).collect();
    let byzantine: Vec<String> = [2, 3].iter().map(|&i| c.roster().servers[i].public.to_hex()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        // Two branches at index 1, proposed by the two honest members at once.
        let calls: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|at| {
                let append = Append::signed(&owner, &genesis, 1, format!("branch of {at}").into_bytes(), None).unwrap();
                let s = svc(&c, at).unwrap();
                async move { s.append(append).await }
            })
            .collect();
        let results = rt.block_on(futures_util::future::join_all(calls));
        let forked = results.iter().all(|r| r.is_ok());
        let accused: BTreeMap<String, u64> = (0..4).flat_map(|i| svc(&c, i).unwrap().equivocations()).collect();
        if forked {
            // Each honest member got the other's branch pushed to it: evidence within a deadline.
            let until = Instant::now() + Duration::from_secs(10);
            let mut accused = accused;
            while accused.is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
                accused = (0..4).flat_map(|i| svc(&c, i).unwrap().equivocations()).collect();
            }
            assert!(!accused.is_empty(), "a fork happened and nobody was accused");
            // Every member in both branches' links is accused (two Byzantine or more: the links
            // each have 3 of 4, so at least two sign both), and only those (or a Byzantine member
            // caught preparing two blocks in one view). Beyond f an honest member can be among
            // them: one that committed branch A in a view and then saw a certificate of branch B
            // from a later view (the two Byzantine members and the other honest one made it) moves
            // its lock, as the rules let it for liveness; forward links carry no view, so a fork
            // cannot tell it apart. Prepares of two blocks in one view (the other evidence) are exact.
            // (The members' stores may all have kept one branch's link, the other's only seen in
            // the evidence: then the masks cannot be compared here.)
            let both = signed_both(&c, &genesis);
            if both.is_empty() {
                eprintln!("fork: every member kept the same link; masks not compared");
            } else {
                assert!(both.len() >= 2, "a fork of two links of 3 of 4 has at least 2 signers in both: {both:?}");
                let until = Instant::now() + Duration::from_secs(10);
                while !both.iter().all(|m| accused.contains_key(m)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                    accused = (0..4).flat_map(|i| svc(&c, i).unwrap().equivocations()).collect();
                }
                for member in &both {
                    assert!(accused.contains_key(member), "member {member} signed both branches and is not accused");
                }
                for member in accused.keys() {
                    assert!(both.contains(member) || byzantine.contains(member), "member {member} accused wrongly");
                    if honest.contains(member) {
                        eprintln!("beyond f: honest member {member} moved its lock and signed both branches");
                    }
                }
            }
            // /status and /metrics show what node 0 holds (read until no record arrives meanwhile).
            loop {
                let held = svc(&c, 0).unwrap().equivocations().values().sum::<u64>();
                let metrics = conode_core::api::metrics_text(c.node(0).context().unwrap());
                let status = conode_core::services::status::status_map(c.node(0).context().unwrap());
                if held != svc(&c, 0).unwrap().equivocations().values().sum::<u64>() {
                    assert!(Instant::now() < until, "the evidence held never settled");
                    continue;
                }
                assert!(metrics.contains(&format!("conode_skipchain_equivocations_total {held}")), "{metrics}");
                assert_eq!(status["Skipchain"]["Equivocations"], held.to_string());
                return;
            }
        }
        // Without two acknowledged branches there may be prepare evidence (the Byzantine members
        // prepared both branches in one view), or link evidence when both links formed anyway.
        let both = signed_both(&c, &genesis);
        for member in accused.keys() {
            assert!(byzantine.contains(member) || both.contains(member), "member {member} accused wrongly");
        }
        assert!(Instant::now() < deadline, "the two branches never both went through");
        // Try again on a fresh chain.
        attempt += 1;
        genesis = c.create_chain(0, vec![owner.public()], format!("genesis {attempt}").into_bytes()).unwrap().hash;
    }
}

/// Within the fault bound, a single member that prepares two different blocks at one index in one
/// view cannot make a fork, but it is caught: a proposer whose view failed holds the members'
/// signatures of its block (the sub-threshold aggregate) and compares them with the certificate of
/// the other block (from the members' locks) and the members' own signatures in slot replies.
#[test]
fn a_single_member_that_prepares_two_blocks_in_one_view_is_reported() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let byzantine = 3;
    c.node(byzantine).skipchain().unwrap().set_signs_anything(true);
    let byzantine_key = c.roster().servers[byzantine].public.to_hex();
    let mut events = c.node(0).events();
    let mut events1 = c.node(1).events();
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    let accused = || -> BTreeMap<String, u64> { (0..4).flat_map(|i| svc(&c, i).unwrap().equivocations()).collect() };
    let mut trials = 0;
    while accused().is_empty() {
        assert!(trials < 30, "30 contended slots and the member that prepared both blocks was never reported");
        trials += 1;
        // Two blocks for the next index, proposed by two honest members at once: both ask every
        // member to prepare in view 1, the Byzantine one signs both.
        let next = svc(&c, 0)
            .unwrap()
            .store()
            .latest_index(&genesis)
            .unwrap_or(0)
            .max(svc(&c, 1).unwrap().store().latest_index(&genesis).unwrap_or(0))
            + 1;
        let calls: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|at| {
                let data = format!("slot {next} from {at}").into_bytes();
                let append = Append::signed(&owner, &genesis, next, data, None).unwrap();
                let s = svc(&c, at).unwrap();
                async move { s.append(append).await }
            })
            .collect();
        let results = rt.block_on(futures_util::future::join_all(calls));
        let blocks: Vec<Vec<u8>> = results.iter().filter_map(|r| r.as_ref().ok()).map(|b| b.hash.clone()).collect();
        assert!(blocks.windows(2).all(|w| w[0] == w[1]), "two different blocks acknowledged at index {next}");
    }
    let accused = accused();
    assert_eq!(accused.keys().collect::<Vec<_>>(), vec![&byzantine_key], "only the equivocating member is accused");
    // The proposer that holds it counts it in /status and /metrics and announced it as an event.
    let holder = (0..2).find(|&i| !svc(&c, i).unwrap().equivocations().is_empty()).unwrap();
    let held = svc(&c, holder).unwrap().equivocations()[&byzantine_key];
    let metrics = conode_core::api::metrics_text(c.node(holder).context().unwrap());
    assert!(
        metrics.contains(&format!("conode_skipchain_equivocations_total {held}")),
        "metrics lack the evidence: {metrics}"
    );
    let status = conode_core::services::status::status_map(c.node(holder).context().unwrap());
    assert_eq!(status["Skipchain"]["Equivocations"], held.to_string());
    let bus = if holder == 0 { &mut events } else { &mut events1 };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match bus.next_event(left) {
            Some(e) if e.kind() == "prepare_equivocation" => {
                assert_eq!(e.to_json()["member"], byzantine_key);
                break;
            }
            Some(_) => {}
            None => panic!("no prepare_equivocation event"),
        }
    }
    eprintln!("equivocation: caught after {trials} contended slots, {held} record(s) at node {holder}");
}

/// A Byzantine proposer asks the members to prepare a real, owner-signed block in a view far
/// ahead (the highest a member takes part in) and leaves it there. Had the members followed, each
/// would refuse every later honest view (none is above the bound) and the slot would be stuck for
/// good; views open with time, so they refuse the far view (also after a restart), and honest
/// appends go on.
#[test]
fn a_byzantine_proposer_cannot_push_members_to_views_no_one_follows() {
    let mut c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let byzantine = svc(&c, 3).unwrap();
    byzantine.set_signs_anything(true);
    byzantine.set_batched_rounds(false);
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    c.append(0, &owner, &genesis, b"one".to_vec()).unwrap();
    for index in 2..=4 {
        if index == 4 {
            // Restarted members know when the slot opened as well (the arrival is stored), and
            // refuse a view opening in hours as they did before.
            for i in 0..3 {
                c.stop(i).unwrap();
                restart(&mut c, i);
            }
        }
        // Views the Byzantine member owns (member 3 of 4) at this slot: far ahead, and near the
        // bound (so that it is refused for the time the slot has been open, not as another's).
        let owned_by_3 = |near: u64| {
            (0..4)
                .map(|k| near - VIEW_WINDOW * (k + 1))
                .find(|&v| owner_of_view(&genesis, index, 4, v) == Some(3))
                .unwrap()
        };
        let far = owned_by_3(if index == 4 { 10_000_000 } else { MAX_VIEW });
        let byzantine = svc(&c, 3).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while byzantine.store().latest_index(&genesis) < Some(index - 1) {
            assert!(Instant::now() < deadline, "the Byzantine member never held block {}", index - 1);
            let _ = rt.block_on(byzantine.catch_up(&genesis, &c.roster().servers[0].clone()));
        }
        byzantine.set_proposes_in_view(far);
        let pushed = Append::signed(&owner, &genesis, index, b"pushed far ahead".to_vec(), None).unwrap();
        let err = rt.block_on(byzantine.append(pushed)).unwrap_err().to_string();
        assert!(!err.contains("left after the prepare round"), "the members prepared in view {far}: {err}");
        byzantine.set_proposes_in_view(0);
        // The honest members go on at once, in the usual views.
        let block = c.append(1, &owner, &genesis, format!("honest {index}").into_bytes()).unwrap();
        assert_eq!((block.index, block.data.as_slice()), (index, format!("honest {index}").as_bytes()));
    }
}

/// A Byzantine member races the honest proposers: again and again, back to back (four threads
/// queue on the chain's append lock), it asks the members to prepare a block of its own in the
/// newest view open that it owns, and leaves it there. Were views everyone's, it would ask for the newest open view, a view
/// ahead of an honest proposer's next one each time (members refuse a view below one they
/// prepared in, and commit nothing of a view below one they prepared in); views from 2 on are
/// owned in windows, so an honest member proposes in its own window, which the racer cannot pass
/// while it is the newest, and every honest append goes through.
#[test]
fn a_byzantine_proposer_racing_to_each_new_view_does_not_stall_the_chain() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    // As on a chain appended to long after its previous block: many views open, the racer's own
    // windows among them.
    (0..4).for_each(|i| svc(&c, i).unwrap().set_slots_aged(Duration::from_secs(20)));
    let byzantine = svc(&c, 3).unwrap();
    byzantine.set_signs_anything(true);
    byzantine.set_batched_rounds(false);
    byzantine.set_proposes_in_view(RACES_TO_NEWEST_VIEW);
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    let racing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let racers: Vec<_> = (0..4)
        .map(|t| {
            let (flag, racer, key, chain) = (racing.clone(), byzantine.clone(), owner.clone(), genesis.clone());
            let handle = rt.clone();
            std::thread::spawn(move || {
                let mut pushes = 0u64;
                while flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let next = racer.store().latest_index(&chain).unwrap_or(0) + 1;
                    let data = format!("racing {t}/{pushes}").into_bytes();
                    let append = Append::signed(&key, &chain, next, data, None).unwrap();
                    if handle.block_on(racer.append(append)).is_err() {
                        std::thread::yield_now();
                    }
                    pushes += 1;
                }
                pushes
            })
        })
        .collect();
    let honest = svc(&c, 0).unwrap();
    let started = Instant::now();
    for k in 1..=3u64 {
        // The race is on at this slot: member 0 prepared the racer's block in a view of its.
        let what = format!("the racer's view at slot {k}");
        support::wait_until(Duration::from_secs(30), &what, || honest.prepared_view(&genesis, k) >= 2);
        // At the first call (its proposer waits for its own window at most a turn of windows),
        // not after retries that the racer lets through by chance.
        let started = Instant::now();
        let block = c
            .append(0, &owner, &genesis, format!("honest {k}").into_bytes())
            .unwrap_or_else(|e| panic!("honest append {k} stalled by the racer: {e}"));
        assert!(started.elapsed() < Duration::from_millis(4 * VIEW_WINDOW) + Duration::from_secs(3));
        assert_eq!((block.index, block.data.clone()), (k, format!("honest {k}").into_bytes()));
    }
    racing.store(false, std::sync::atomic::Ordering::SeqCst);
    let pushes: u64 = racers.into_iter().map(|r| r.join().unwrap()).sum();
    eprintln!("racing proposer: {pushes} pushes; 3 honest appends in {:?}", started.elapsed());
}

/// When the members hold two different level-0 links from the genesis (a fork at index 1): the
/// members in both links' masks (hex keys); otherwise none.
fn signed_both(c: &LocalCluster, genesis: &[u8]) -> Vec<String> {
    let links: Vec<_> = (0..4)
        .filter_map(|i| svc(c, i)?.store().block_at(genesis, 0)?.forward_links.first().cloned())
        .filter(|l| !l.to.is_empty())
        .collect();
    let Some(a) = links.first() else { return vec![] };
    let Some(b) = links.iter().find(|l| l.to != a.to) else { return vec![] };
    let signers = |l: &conode_core::verify::skipchain::ForwardLink| -> Vec<usize> {
        l.signature.as_ref().and_then(|s| Mask::from_bytes(4, &s.mask).ok()).map(|m| m.indices()).unwrap_or_default()
    };
    let (sa, sb) = (signers(a), signers(b));
    sa.iter().filter(|m| sb.contains(m)).map(|&m| c.roster().servers[m].public.to_hex()).collect()
}

/// A proposer appends a block, withholds it from one honest member (that member signed its
/// prepare and forward link but never got the block), and goes silent: a Byzantine proposer, or
/// one that crashed while sending the block. The remaining honest members need the one that lacks
/// the block: it catches up when asked to prepare the next one, and the next append goes through
/// at its first call (before, the member refused every later block until it restarted).
#[test]
fn a_block_withheld_from_a_member_by_a_proposer_that_then_goes_silent_does_not_stall_the_chain() {
    let mut c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let owner = IdentityKeyPair::generate();
    let rt = c.runtime().handle().clone();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    let append = |c: &LocalCluster, at: usize, index: u64| {
        let req = Append::signed(&owner, &genesis, index, format!("block {index}").into_bytes(), None).unwrap();
        let s = svc(c, at).unwrap();
        rt.block_on(async move { s.append(req).await })
    };
    for index in 1..=3 {
        append(&c, 0, index).unwrap();
    }
    let (byzantine, cut_off) = (0, 3);
    support::wait_until(Duration::from_secs(10), "every member holds block 3", || {
        (0..4).all(|i| svc(&c, i).unwrap().store().latest_index(&genesis) == Some(3))
    });
    // The member refuses the pushed block (as if it never came), the proposer leaves.
    svc(&c, cut_off).unwrap().set_refuses_store(true);
    append(&c, byzantine, 4).unwrap();
    c.stop(byzantine).unwrap();
    svc(&c, cut_off).unwrap().set_refuses_store(false);
    assert_eq!(svc(&c, cut_off).unwrap().store().latest_index(&genesis), Some(3));
    let t = Instant::now();
    let block = append(&c, 1, 5);
    assert!(block.is_ok(), "the append after the withheld block failed after {:?}: {block:?}", t.elapsed());
    eprintln!("append after a withheld block: {:?}", t.elapsed());
}

/// A Byzantine member appends a block with the others but leaves one honest member out of it
/// (its rounds and its push), long after the previous block (a quiet chain: here the slots are
/// aged at every member but that one, which learns of the block only when it catches up). It
/// then pushes the others to its newest view of the next slot and stops voting. The member left
/// out opens views from when it caught up: without more, it could not follow the others to their
/// views for as long as the chain had been quiet, and the honest appends would stall that long.
#[test]
fn a_member_left_out_of_a_block_follows_the_others_views_at_once() {
    left_out_of_a_block_then_raced(false);
}

/// As above, but the left-out member gets the block late by a push (offered again), not by a
/// catch-up: it learns the others' arrival when asked for a view not open at it yet.
#[test]
fn a_member_pushed_a_block_late_follows_the_others_views_at_once() {
    left_out_of_a_block_then_raced(true);
}

fn left_out_of_a_block_then_raced(pushed_late: bool) {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (byzantine, left_out) = (0, 3);
    let (owner, genesis) = chain_of_two_blocks(&c);
    // The chain is quiet for a while after block 3 (at the members that get it then).
    (0..4).filter(|&i| i != left_out).for_each(|i| svc(&c, i).unwrap().set_slots_aged(Duration::from_secs(60)));
    // Block 3 without the left-out member: it answers no round and takes no pushed block.
    c.node(left_out).cosi().unwrap().set_fault(CosiFault::Silent);
    svc(&c, left_out).unwrap().set_refuses_store(true);
    c.append(byzantine, &owner, &genesis, b"block 3".to_vec()).unwrap();
    c.node(left_out).cosi().unwrap().set_fault(CosiFault::None);
    svc(&c, left_out).unwrap().set_refuses_store(false);
    if pushed_late {
        support::wait_until(Duration::from_secs(30), "the proposer offers block 3 again", || {
            svc(&c, left_out).unwrap().store().latest_index(&genesis) == Some(3)
        });
    }
    // The Byzantine member pushes the honest ones to its newest view of slot 4, then stops voting.
    let racer = svc(&c, byzantine).unwrap();
    racer.set_batched_rounds(false);
    racer.set_proposes_in_view(RACES_TO_NEWEST_VIEW);
    let pushed = || (1..3).map(|i| svc(&c, i).unwrap().prepared_view(&genesis, 4)).max().unwrap_or(0);
    support::wait_until(Duration::from_secs(10), "the racer pushed the honest members", || {
        let _ = c.append(byzantine, &owner, &genesis, b"racing".to_vec());
        pushed() > 10_000
    });
    let pushed = pushed();
    c.node(byzantine).cosi().unwrap().set_fault(CosiFault::Refuse);
    // The honest members need the left-out one: the append passes at its first call.
    let started = Instant::now();
    let block = c
        .append(1, &owner, &genesis, b"block 4".to_vec())
        .unwrap_or_else(|e| panic!("the honest append stalled ({:?}): {e}", started.elapsed()));
    assert_eq!(block.index, 4);
    eprintln!("append past the racer's view {pushed} with the left-out member: {:?}", started.elapsed());
}

/// A member missed a block (its push), whose proposer then crashed, and clients append through
/// that member alone: it proposes the index the others hold already. It must find out (catch
/// up, and tell the client the index is taken) rather than fail every append until it restarts.
#[test]
fn a_proposer_that_missed_a_block_catches_up_and_the_next_append_through_it_passes() {
    let mut c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (crashed, behind) = (0, 3);
    let (owner, genesis) = chain_of_two_blocks(&c);
    svc(&c, behind).unwrap().set_refuses_store(true);
    c.append(crashed, &owner, &genesis, b"block 3".to_vec()).unwrap();
    c.stop(crashed).unwrap();
    svc(&c, behind).unwrap().set_refuses_store(false);
    assert_eq!(svc(&c, behind).unwrap().store().latest_index(&genesis), Some(2));
    // The client asks for index 3 (the next one as this member knows it): taken.
    let err = c.append(behind, &owner, &genesis, b"late 3".to_vec()).unwrap_err();
    assert!(err.to_string().contains("committed"), "{err}");
    assert_eq!(svc(&c, behind).unwrap().store().latest_index(&genesis), Some(3));
    let block = c.append(behind, &owner, &genesis, b"block 4".to_vec()).unwrap();
    assert_eq!(block.index, 4);
}

/// A Byzantine proposer leaves a member out of a block (the member takes no pushed block in this
/// test, so only a catch-up can bring it), then stops voting and stalls every member that catches
/// up: it says at once how far the chain goes, claiming 1,000 blocks it does not have (so it is
/// asked first), and holds every request for blocks unanswered. The next append needs the member
/// left out, which catches up when asked to prepare. When the member asked for blocks stores it
/// nothing for a quarter second, it asks another one beside it. The liar used to hold the
/// catch-up for a peer timeout (10 s): every append failed that long.
#[test]
fn a_member_that_stalls_catch_ups_holds_back_the_chain_a_moment_at_most() {
    let liar = CatchUpFault::Liar { latest_after: Duration::ZERO, empty_blocks_after: None };
    append_past_a_liar_in_catch_ups(liar, &[3], None);
}

/// As above, but the liar also holds its answer to how far the chain goes for 2.5 s (within the
/// catch-up's 3 s for that question). The member catching up waits for the last f answers a
/// quarter second at most after the others' (it used to wait for all: 2.5 s here, every append
/// failing meanwhile), and asks the members that answered.
#[test]
fn a_member_that_answers_late_how_far_the_chain_goes_holds_back_the_chain_a_moment_at_most() {
    let liar = CatchUpFault::Liar { latest_after: Duration::from_millis(2500), empty_blocks_after: None };
    append_past_a_liar_in_catch_ups(liar, &[3], None);
}

/// Two members are left out of a block; the only honest member that holds it is on a slow link
/// (its blocks come 0.6 s late). The liar, asked first, answers with no block after 0.4 s: after
/// the honest member was asked beside it, before that one's blocks came. A member that gives less
/// than it claimed counts as failed: the catch-up waits for the honest member's blocks (it used to
/// end at the liar's empty answer, dropping the honest fetch, and the appends failed).
#[test]
fn a_member_that_claims_blocks_and_gives_none_does_not_end_a_catch_up() {
    let liar =
        CatchUpFault::Liar { latest_after: Duration::ZERO, empty_blocks_after: Some(Duration::from_millis(400)) };
    append_past_a_liar_in_catch_ups(liar, &[2, 3], Some(CatchUpFault::Slow { by: Duration::from_millis(600) }));
}

/// Member 0 is a Byzantine proposer: it appends block 3 with the `left_out` members taking no
/// pushed block (so only a catch-up can bring it to them), then stops voting and answers members
/// catching up as `liar` says; member 1, honest, answers them as `honest` says. The append of
/// block 4 through member 1 needs the members left out. It passes at its first call, or (when the
/// proposer's views ran out just before the catch-ups were done) at its second, within 3 s in all.
fn append_past_a_liar_in_catch_ups(liar: CatchUpFault, left_out: &[usize], honest: Option<CatchUpFault>) {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let byzantine = 0;
    let (owner, genesis) = chain_of_two_blocks(&c);
    for &i in left_out {
        svc(&c, i).unwrap().set_refuses_store(true);
    }
    c.append(byzantine, &owner, &genesis, b"block 3".to_vec()).unwrap();
    for &i in left_out {
        assert_eq!(svc(&c, i).unwrap().store().latest_index(&genesis), Some(2));
    }
    c.node(byzantine).cosi().unwrap().set_fault(CosiFault::Silent);
    svc(&c, byzantine).unwrap().set_catch_up_fault(Some(liar));
    svc(&c, 1).unwrap().set_catch_up_fault(honest);
    let t = Instant::now();
    let first = c.append(1, &owner, &genesis, b"block 4".to_vec());
    let block =
        first.as_ref().ok().cloned().map(Ok).unwrap_or_else(|| c.append(1, &owner, &genesis, b"block 4".to_vec()));
    let took = t.elapsed();
    assert!(block.is_ok(), "two appends failed in {took:?}, the first with {first:?}, the second with {block:?}");
    assert!(took < Duration::from_secs(3), "the append took {took:?}: the liar held the catch-up");
    let calls = if first.is_ok() { 1 } else { 2 };
    eprintln!("append past a liar in catch-ups ({liar:?}, honest {honest:?}): {took:?}, {calls} call(s)");
}

/// Anyone may send a member a proposal. One naming a block beyond the member's next makes it catch
/// up from the others only when the chain's owner signed the block (or a governor checks the
/// chain): a stranger must not make members fetch and verify at will. The real block 4, sent
/// signed by a key that is not the owner's, is refused without a catch-up; sent signed by the
/// owner, it is refused too (the member cannot check it yet) but starts one, which brings the
/// member the blocks it missed. (A catch-up started by the forged one would also have used up the
/// chain's limit, and the owner's would not say "catching up".)
#[test]
fn only_a_proposal_the_owner_signed_makes_a_member_that_is_behind_catch_up() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let behind = 3;
    let (owner, genesis) = chain_of_two_blocks(&c);
    // Blocks 3 and 4 without the member: it answers no round and takes no pushed block.
    c.node(behind).cosi().unwrap().set_fault(CosiFault::Silent);
    svc(&c, behind).unwrap().set_refuses_store(true);
    for k in 3..=4 {
        c.append(0, &owner, &genesis, format!("block {k}").into_bytes()).unwrap();
    }
    c.node(behind).cosi().unwrap().set_fault(CosiFault::None);
    let block4 = svc(&c, 0).unwrap().store().block_at(&genesis, 4).unwrap();
    // The prepare round of block 4, with its owner's signature by `key`, checked by the member's
    // prepare hook (run as the root of a round of its own: a member that holds block 4, as root,
    // would refuse it before asking anyone); returns how the member refused it.
    let refusal = |key: &IdentityKeyPair| {
        let signed = Append::signed(key, &genesis, 4, block4.data.clone(), None).unwrap();
        let proposal = Proposal {
            block: Some(block4.clone()),
            owner: signed.owner,
            owner_signature: signed.signature,
            view: 1,
            ..Default::default()
        };
        let statement = prepare_message(&genesis, 4, 1, &block4.hash);
        let alone = Roster::new(vec![c.roster().servers[behind].clone()]);
        let cosi = c.node(behind).cosi().unwrap();
        let outcome = c.runtime().block_on(cosi.sign(
            &alone,
            &statement,
            PREPARE_PURPOSE,
            &proposal.encode_to_vec(),
            Policy::Default,
        ));
        let text = format!("{outcome:?}");
        assert!(outcome.is_err(), "a member that holds up to block 2 prepared block 4: {text}");
        assert!(text.contains("holds up to 2"), "{text}");
        text
    };
    let stranger = IdentityKeyPair::generate();
    let forged = refusal(&stranger);
    assert!(!forged.contains("catching up"), "a stranger's proposal started a catch-up: {forged}");
    assert_eq!(svc(&c, behind).unwrap().store().latest_index(&genesis), Some(2));
    let owners = refusal(&owner);
    assert!(owners.contains("catching up"), "the owner's proposal started no catch-up: {owners}");
    support::wait_until(Duration::from_secs(10), "the member catches up to block 4", || {
        svc(&c, behind).unwrap().store().latest_index(&genesis) == Some(4)
    });
}

/// A chain with an owner and two blocks (appended through member 1), held by every member of `c`.
fn chain_of_two_blocks(c: &LocalCluster) -> (IdentityKeyPair, Vec<u8>) {
    let owner = IdentityKeyPair::generate();
    let genesis = c.create_chain(0, vec![owner.public()], b"genesis".to_vec()).unwrap().hash;
    for k in 1..=2 {
        c.append(1, &owner, &genesis, format!("block {k}").into_bytes()).unwrap();
    }
    support::wait_until(Duration::from_secs(10), "every member holds block 2", || {
        (0..c.roster().len()).all(|i| svc(c, i).unwrap().store().latest_index(&genesis) == Some(2))
    });
    (owner, genesis)
}

/// As above, while a stranger reads far ahead on many chains the member holds, as fast as it
/// likes (each such read may start a catch-up, a few per second in all): the catch-up a proposal
/// asks for has a limit of its own, and the append after the withheld block still passes at its
/// first call.
#[test]
fn a_strangers_far_reads_do_not_hold_back_the_catch_up_a_proposal_asks_for() {
    let mut c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (owner, genesis) = chain_of_two_blocks(&c);
    let (byzantine, cut_off) = (0, 3);
    let others: Vec<Vec<u8>> = (0..8).map(|k| c.create_chain(1, vec![owner.public()], vec![k]).unwrap().hash).collect();
    svc(&c, cut_off).unwrap().set_refuses_store(true);
    c.append(byzantine, &owner, &genesis, b"block 3".to_vec()).unwrap();
    c.stop(byzantine).unwrap();
    svc(&c, cut_off).unwrap().set_refuses_store(false);
    assert_eq!(svc(&c, cut_off).unwrap().store().latest_index(&genesis), Some(2));
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let url = conode_core::client_api::ClientUrl::parse(&c.client_url(cut_off).unwrap()).unwrap();
    let (flag, rt) = (reading.clone(), c.runtime().handle().clone());
    let reader = std::thread::spawn(move || {
        let client = conode_core::api::client::Client::new(url, Duration::from_secs(10));
        let mut reads = 0u64;
        while flag.load(std::sync::atomic::Ordering::SeqCst) {
            for chain in &others {
                let far = conode_core::services::skipchain::messages::GetBlock {
                    hash: vec![],
                    genesis: chain.clone(),
                    index: 99,
                };
                let _ = rt.block_on(client.block(&far));
                reads += 1;
            }
        }
        reads
    });
    let (started0, _) = svc(&c, cut_off).unwrap().read_catch_ups();
    support::wait_until(Duration::from_secs(10), "the stranger's reads start catch-ups", || {
        svc(&c, cut_off).unwrap().read_catch_ups().0 >= started0 + 2
    });
    let t = Instant::now();
    let block = c.append(1, &owner, &genesis, b"block 4".to_vec());
    reading.store(false, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.join().unwrap();
    assert!(block.is_ok(), "the append after the withheld block failed after {:?}: {block:?}", t.elapsed());
    eprintln!("append after a withheld block, {reads} far reads meanwhile: {:?}", t.elapsed());
}

/// A proposer gets the fast prepare of its block X signed by every member in view 1, then leaves
/// (it signs no link and pushes nothing): X may be final, since whoever holds that signature can
/// publish it as X's v4 forward link. Another member's append of a different block must then end
/// with X at that index on every member (its client told of the conflict), not a fork.
#[test]
fn a_block_every_member_prepared_in_view_1_is_the_one_committed_after_its_proposer_leaves() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (owner, genesis) = chain_of_two_blocks(&c);
    let left = prepare_x_and_leave(&c, &owner, &genesis);
    assert!(left.contains("left after the prepare round"), "{left}");
    for i in 0..4 {
        assert_eq!(svc(&c, i).unwrap().prepared_view(&genesis, 3), 1, "member {i} prepared X in view 1");
        assert_eq!(svc(&c, i).unwrap().store().latest_index(&genesis), Some(2));
    }
    y_conflicts_and_x_is_block_3(&c, &owner, &genesis, 1, 0..4);
}

/// Member 0 gets X prepared at index 3 in view 1, then leaves (it signs no link, pushes nothing).
fn prepare_x_and_leave(c: &LocalCluster, owner: &IdentityKeyPair, genesis: &[u8]) -> String {
    let leaver = svc(c, 0).unwrap();
    leaver.set_proposes_in_view(1);
    let x = Append::signed(owner, genesis, 3, b"X".to_vec(), None).unwrap();
    let left = c.runtime().block_on(leaver.append(x)).unwrap_err();
    leaver.set_proposes_in_view(0);
    left.to_string()
}

/// Another client's append of Y at index 3 through member `via` ends in a conflict, and every
/// member of `members` holds X there.
fn y_conflicts_and_x_is_block_3(
    c: &LocalCluster,
    owner: &IdentityKeyPair,
    genesis: &[u8],
    via: usize,
    members: std::ops::Range<usize>,
) {
    let y = Append::signed(owner, genesis, 3, b"Y".to_vec(), None).unwrap();
    let outcome = c.runtime().block_on(svc(c, via).unwrap().append(y));
    assert!(
        matches!(&outcome, Err(SkipchainError::Conflict(_))),
        "the append of Y ended {outcome:?}, not in a conflict"
    );
    for i in members {
        support::wait_until(Duration::from_secs(10), "every running member holds block 3", || {
            svc(c, i).unwrap().store().latest_index(genesis) == Some(3)
        });
        assert_eq!(svc(c, i).unwrap().store().block_at(genesis, 3).unwrap().data, b"X", "member {i}");
    }
}

/// As above, with member 3 hung in X's round (X is prepared by members 0 to 2 in view 1, not fast
/// final) and member 2 Byzantine: asked for its slot state, it gives its record of X with the
/// owner's signature altered. Member 3, back, proposes Y; after view 1 fails it re-proposes X, as
/// more than f members say they prepared it, taking X from a member whose record members accept
/// (member 2's comes first and would be refused by every member, view after view). X is committed.
#[test]
fn a_record_of_view_1_a_byzantine_member_altered_is_passed_over_and_the_block_committed() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (owner, genesis) = chain_of_two_blocks(&c);
    c.node(3).cosi().unwrap().set_fault(CosiFault::Silent);
    prepare_x_and_leave(&c, &owner, &genesis);
    c.node(3).cosi().unwrap().set_fault(CosiFault::None);
    for i in 0..3 {
        assert_eq!(svc(&c, i).unwrap().prepared_view(&genesis, 3), 1, "member {i} prepared X in view 1");
    }
    assert_eq!(svc(&c, 3).unwrap().prepared_view(&genesis, 3), 0, "member 3 was hung");
    svc(&c, 2).unwrap().set_alters_first_view(true);
    let record = |member: usize| -> Proposal {
        let query = SlotQuery { genesis: genesis.clone(), index: 3 }.encode_to_vec();
        let to = c.roster().servers[member].clone();
        let net = c.node(3).network().unwrap();
        let reply =
            c.runtime().block_on(net.request(&to, SKIPCHAIN_SERVICE, "Slot", &[], query, Duration::from_secs(10)));
        SlotState::decode(reply.unwrap().as_slice()).unwrap().first_view.expect("a record of X")
    };
    let (honest, altered) = (record(1), record(2));
    assert_eq!(honest.block.as_ref().unwrap().hash, altered.block.as_ref().unwrap().hash);
    assert_ne!(honest.owner_signature, altered.owner_signature, "member 2 alters its record");
    y_conflicts_and_x_is_block_3(&c, &owner, &genesis, 3, 0..4);
}

/// An append waits at most a second (`PROPAGATE_WAIT`) for the members to confirm storing its
/// block X: with every member slow to store pushed blocks, X is acknowledged while it is durable
/// at its proposer only. The proposer then stops, its pushes still on their way: X is not lost.
/// Every member keeps it with its vote, and another member's append of that index ends with X
/// there on every member (its client told of the conflict).
#[test]
fn a_block_acknowledged_before_the_members_stored_it_survives_its_proposer_stopping() {
    let mut c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (owner, genesis) = chain_of_two_blocks(&c);
    (1..4).for_each(|i| svc(&c, i).unwrap().set_stores_late_by(Duration::from_secs(60)));
    let x = Append::signed(&owner, &genesis, 3, b"X".to_vec(), None).unwrap();
    let acknowledged = c.runtime().block_on(svc(&c, 0).unwrap().append(x)).unwrap();
    for i in 1..4 {
        let member = svc(&c, i).unwrap();
        assert_eq!(member.store().latest_index(&genesis), Some(2), "member {i} stored X already");
        assert_eq!(member.prepared_view(&genesis, 3), 1, "member {i} keeps X with its vote");
    }
    c.stop(0).unwrap();
    (1..4).for_each(|i| svc(&c, i).unwrap().set_stores_late_by(Duration::ZERO));
    y_conflicts_and_x_is_block_3(&c, &owner, &genesis, 1, 1..4);
    for i in 1..4 {
        assert_eq!(svc(&c, i).unwrap().store().block_at(&genesis, 3).unwrap().hash, acknowledged.hash, "member {i}");
    }
}

/// A Byzantine proposer (member 0) got every member's fast prepare of X at index 3 (X may be
/// final: it holds X's v4 link) and asks for another block Y in view 2 with a closure it made up:
/// its own "nothing" (a lie) and an honest member's statement of what it prepared in view 1 at
/// another chain's index 3 (a block Z there, not X). The members refuse: a statement names its
/// slot, and f of them prove nothing. X stays the block of index 3.
#[test]
fn a_byzantine_proposer_cannot_close_view_1_with_statements_of_another_slot() {
    let c = LocalCluster::new(4).unwrap();
    (0..4).for_each(|i| quick_rounds(&c, i));
    let (owner, genesis) = chain_of_two_blocks(&c);
    let (other_owner, other) = chain_of_two_blocks(&c);
    let rt = c.runtime().handle().clone();
    let byzantine = svc(&c, 0).unwrap();
    byzantine.set_proposes_in_view(1);
    for (owner, chain, data) in [(&owner, &genesis, b"X"), (&other_owner, &other, b"Z")] {
        let req = Append::signed(owner, chain, 3, data.to_vec(), None).unwrap();
        rt.block_on(byzantine.append(req)).unwrap_err();
    }
    byzantine.set_proposes_in_view(0);
    let ask = |member: usize, chain: &[u8]| -> SlotState {
        let query = SlotQuery { genesis: chain.to_vec(), index: 3 }.encode_to_vec();
        let to = c.roster().servers[member].clone();
        let net = c.node(0).network().unwrap();
        let reply = rt.block_on(net.request(&to, SKIPCHAIN_SERVICE, "Slot", &[], query, Duration::from_secs(10)));
        SlotState::decode(reply.unwrap().as_slice()).unwrap()
    };
    let replayed = ask(1, &other).first_view_statement.expect("member 1 says what it prepared there");
    assert_eq!(replayed.member, 1);
    assert!(!replayed.block_hash.is_empty(), "a block of the other chain: Z");
    let x = ask(1, &genesis).first_view.expect("member 1 keeps X");
    let roster_id = svc(&c, 1).unwrap().store().block_at(&genesis, 2).unwrap().roster.unwrap().id();
    let key = c.node(0).config().cosi_key().cloned().unwrap();
    let lie = FirstViewStatement {
        member: 0,
        block_hash: Vec::new(),
        signature: key.sign(&first_view_message(&genesis, 3, &roster_id, &[])).to_bytes().to_vec(),
    };
    let mut y = x.block.clone().unwrap();
    y.data = b"Y".to_vec();
    y.hash = y.compute_hash().to_vec();
    let signed_y = Append::signed(&owner, &genesis, 3, b"Y".to_vec(), None).unwrap();
    let proposal = Proposal {
        block: Some(y.clone()),
        owner: signed_y.owner,
        owner_signature: signed_y.signature,
        view: 2,
        closure: vec![lie, replayed],
        ..Default::default()
    };
    let statement = prepare_message(&genesis, 3, 2, &y.hash);
    let (cosi, extra) = (c.node(0).cosi().unwrap(), proposal.encode_to_vec());
    let round = cosi.sign(c.roster(), &statement, PREPARE_PURPOSE, &extra, Policy::Default);
    let err = rt.block_on(round).unwrap_err().to_string();
    assert!(err.contains("prepared another block in view 1"), "{err}");
    for i in 1..4 {
        assert_eq!(svc(&c, i).unwrap().prepared_view(&genesis, 3), 1, "member {i} prepared in view 2");
    }
    // The honest way on: X.
    let z = Append::signed(&owner, &genesis, 3, b"W".to_vec(), None).unwrap();
    let outcome = rt.block_on(svc(&c, 2).unwrap().append(z));
    assert!(matches!(&outcome, Err(e) if e.to_string().contains("conflict")), "{outcome:?}");
    support::wait_until(Duration::from_secs(10), "every member holds X", || {
        (0..4).all(|i| svc(&c, i).unwrap().store().block_at(&genesis, 3).is_some_and(|b| b.data == b"X"))
    });
}
