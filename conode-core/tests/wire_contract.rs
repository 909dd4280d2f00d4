//! The wire contract cannot drift: every protobuf message, fully populated, must encode to the exact
//! bytes recorded here (taken from the hand-written prost structs before the types were generated
//! from `proto/`) and decode back to the same value. A changed tag, type, packing or presence rule
//! in a `.proto` file shows up as a changed hex string. Also checks that build.rs compiles every
//! `.proto` file in `proto/` and that the modules re-export the generated types instead of copies.

use conode_core::network::frame::Envelope;
use conode_core::services::beacon::messages as beacon;
use conode_core::services::cosi::messages as cosi;
use conode_core::services::dkg::messages as dkg;
use conode_core::services::skipchain::messages as sc;
use conode_core::services::status::messages as status;
use conode_core::verify::skipchain::{BlockRoster, CollectiveSignature, ForwardLink, RosterEntry, SkipBlock};
use conode_core::verify::skipchain_wire::{GetUpdateChain, Proof};
use prost::Message;
use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;

/// Encodes `v`, compares with the golden hex, decodes back.
fn check<M: Message + Default + PartialEq + Debug>(name: &str, v: &M, golden: &str) {
    let bytes = v.encode_to_vec();
    assert_eq!(hex::encode(&bytes), golden, "{name}: wire bytes changed");
    assert_eq!(&M::decode(bytes.as_slice()).expect(name), v, "{name}: round trip");
}

fn b(tag: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| tag.wrapping_add(i as u8)).collect()
}

// --- cosi ------------------------------------------------------------------------------------

fn exclusion_cosi(i: u32) -> cosi::Exclusion {
    cosi::Exclusion { index: i, reason: format!("reason {i}") }
}

fn cosi_member(i: u8) -> cosi::Member {
    cosi::Member { public: b(i, 4), address: format!("tls://h{i}:7770"), cosi_public: b(i + 100, 3) }
}

#[test]
fn cosi_messages() {
    check(
        "SignRequest",
        &cosi::SignRequest {
            message: b(1, 5),
            roster_toml: Some("[[servers]]".into()),
            threshold: Some(0),
            timeout_ms: Some(300_000),
        },
        "0a050102030405120b5b5b736572766572735d5d180020e0a712",
    );
    check("SignRequest/absent", &cosi::SignRequest { message: b(1, 2), ..Default::default() }, "0a020102");
    check("Exclusion", &exclusion_cosi(0xffff_fff0), "08f0ffffff0f1211726561736f6e2034323934393637323830");
    check(
        "SignResponse",
        &cosi::SignResponse {
            signature: b(7, 6),
            mask: vec![0b1011],
            signed: vec![0, 1, 3, 300],
            refused: vec![exclusion_cosi(2)],
            timed_out: vec![exclusion_cosi(4), exclusion_cosi(5)],
            invalid: vec![exclusion_cosi(6)],
            required: 3,
        },
        "0a060708090a0b0c12010b1a05000103ac02220c08021208726561736f6e20322a0c08041208726561736f6e20342a0c08051208726561736f6e2035320c08061208726561736f6e20363803",
    );
    check("Member", &cosi_member(1), "0a0401020304120d746c733a2f2f68313a373737301a03656667");
    check(
        "Announce",
        &cosi::Announce {
            roster: vec![cosi_member(1), cosi_member(2)],
            root: 1,
            statement: b(9, 4),
            purpose: "Skipchain".into(),
            extra: b(20, 3),
            children: vec![2, 3, 200],
            timeout_ms: 5000,
            roster_id: b(30, 8),
            positions: vec![],
            roster_size: 0,
        },
        "0a1a0a0401020304120d746c733a2f2f68313a373737301a036566670a1a0a0402030405120d746c733a2f2f68323a373737301a0366676810011a04090a0b0c2209536b6970636861696e2a0314151632040203c80138882742081e1f202122232425",
    );
    check(
        "Announce/sparse",
        &cosi::Announce {
            roster: vec![cosi_member(1)],
            root: 1,
            positions: vec![0, 5],
            roster_size: 7,
            ..Default::default()
        },
        "0a1a0a0401020304120d746c733a2f2f68313a373737301a0365666710014a0200055007",
    );
    check(
        "Reply",
        &cosi::Reply {
            signature: b(40, 4),
            mask: vec![3, 1],
            refused: vec![exclusion_cosi(1)],
            timed_out: vec![exclusion_cosi(2)],
            invalid: vec![exclusion_cosi(3)],
        },
        "0a0428292a2b120203011a0c08011208726561736f6e2031220c08021208726561736f6e20322a0c08031208726561736f6e2033",
    );
}

// --- beacon ----------------------------------------------------------------------------------

fn exclusion_beacon(i: u32) -> beacon::Exclusion {
    beacon::Exclusion { index: i, reason: format!("why {i}") }
}

fn packet(round: u64) -> beacon::BeaconPacket {
    beacon::BeaconPacket { round, signature: b(1, 5), previous_signature: b(2, 5), randomness: b(3, 4) }
}

#[test]
fn beacon_messages() {
    check(
        "InitRequest",
        &beacon::InitRequest {
            roster_toml: "[[servers]]".into(),
            scheme: "pedersen-bls-chained".into(),
            period_secs: 3,
            threshold: 2,
            phase_timeout_ms: 10_000,
            genesis_time: -1_234_567,
            genesis_delay_ms: 40_000,
            beacon_id: "default".into(),
        },
        "0a0b5b5b736572766572735d5d1214706564657273656e2d626c732d636861696e65641803200228904e30f9d2b4ffffffffffff0138c0b802420764656661756c74",
    );
    check("Exclusion", &exclusion_beacon(7), "080712057768792037");
    check(
        "InitResponse",
        &beacon::InitResponse {
            group_toml: "Threshold = 2".into(),
            info_json: "{}".into(),
            chain_hash: "abcd".into(),
            qualified: vec![0, 1, 2, 1000],
            disqualified: vec![exclusion_beacon(3)],
            absent: vec![exclusion_beacon(4), exclusion_beacon(5)],
            confirmed: 3,
            participants: 4,
            log: vec!["one".into(), "two".into()],
        },
        "0a0d5468726573686f6c64203d203212027b7d1a04616263642205000102e8072a0908031205776879203332090804120577687920343209080512057768792035380340044a036f6e654a0374776f",
    );
    check("DkgStatusRequest", &beacon::DkgStatusRequest {}, "");
    check(
        "DkgStatusResponse",
        &beacon::DkgStatusResponse {
            session: "s".into(),
            phase: "deal".into(),
            elapsed_ms: 1234,
            finished: true,
            error: "e".into(),
            log: vec!["a".into(), "b".into()],
        },
        "0a017312046465616c18d20920012a0165320161320162",
    );
    check("LatestRequest", &beacon::LatestRequest {}, "");
    check("RoundRequest", &beacon::RoundRequest { round: 1_000_000 }, "08c0843d");
    check("InfoRequest", &beacon::InfoRequest {}, "");
    check("InfoResponse", &beacon::InfoResponse { info_json: "{}".into(), group_toml: "g".into() }, "0a027b7d120167");
    check("BeaconPacket", &packet(42), "082a120501020304051a050203040506220403040506");
    check(
        "PartialBeacon",
        &beacon::PartialBeacon { round: 43, previous_signature: b(5, 4), index: 2, partial: b(6, 6) },
        "082b12040506070818022206060708090a0b",
    );
    check(
        "PartialReply",
        &beacon::PartialReply { beacon: Some(packet(44)), latest_round: 45 },
        "0a16082c120501020304051a050203040506220403040506102d",
    );
    check("SyncRequest", &beacon::SyncRequest { from_round: 46, count: 1000 }, "082e10e807");
    check("SubscribeBeacons", &beacon::SubscribeBeacons { from_round: 46 }, "082e");
    check(
        "SyncReply",
        &beacon::SyncReply { beacons: vec![packet(47), packet(48)] },
        "0a16082f120501020304051a0502030405062204030405060a160830120501020304051a050203040506220403040506",
    );
}

// --- dkg -------------------------------------------------------------------------------------

fn dkg_member(i: u8) -> dkg::Member {
    dkg::Member { public: b(i, 4), address: format!("tls://d{i}:7770"), description: format!("node {i}") }
}

fn deal() -> dkg::Deal {
    dkg::Deal {
        session: b(1, 4),
        dealer: 1,
        recipient: 2,
        commitments: vec![b(10, 3), b(20, 3)],
        commit_sig: b(30, 4),
        share: b(40, 4),
        share_sig: b(50, 4),
    }
}

#[test]
fn dkg_messages() {
    check("Member", &dkg_member(1), "0a0401020304120d746c733a2f2f64313a373737301a066e6f64652031");
    let config = dkg::DkgConfig {
        members: vec![dkg_member(1), dkg_member(2)],
        threshold: 2,
        scheme: "bls-unchained-g1-rfc9380".into(),
        period_secs: 3,
        genesis_time: -1_234_567,
        beacon_id: "quicknet".into(),
        phase_timeout_ms: 10_000,
        leader: 1,
        nonce: b(60, 8),
    };
    check("DkgConfig", &config, "0a1d0a0401020304120d746c733a2f2f64313a373737301a066e6f646520310a1d0a0402030405120d746c733a2f2f64323a373737301a066e6f6465203210021a18626c732d756e636861696e65642d67312d72666339333830200328f9d2b4ffffffffffff013208717569636b6e657438904e40014a083c3d3e3f40414243");
    check("Prepare", &dkg::Prepare { config: Some(config) }, "0a80010a1d0a0401020304120d746c733a2f2f64313a373737301a066e6f646520310a1d0a0402030405120d746c733a2f2f64323a373737301a066e6f6465203210021a18626c732d756e636861696e65642d67312d72666339333830200328f9d2b4ffffffffffff013208717569636b6e657438904e40014a083c3d3e3f40414243");
    check("Go", &dkg::Go { session: b(1, 4), participants: vec![0, 1, 500] }, "0a040102030412040001f403");
    check("Deal", &deal(), "0a04010203041001180222030a0b0c22031415162a041e1f2021320428292a2b3a0432333435");
    let entry = dkg::ResponseEntry {
        dealer: 3,
        status: dkg::status::BAD_DEAL,
        commit_hash: b(70, 4),
        commit_sig: b(80, 4),
        evidence: Some(deal()),
    };
    check("ResponseEntry", &entry, "080310031a04464748492204505152532a260a04010203041001180222030a0b0c22031415162a041e1f2021320428292a2b3a0432333435");
    check(
        "Responses",
        &dkg::Responses {
            session: b(1, 4),
            from: 2,
            entries: vec![entry, dkg::ResponseEntry { dealer: 4, status: dkg::status::APPROVE, ..Default::default() }],
            signature: b(90, 4),
        },
        "0a040102030410021a38080310031a04464748492204505152532a260a04010203041001180222030a0b0c22031415162a041e1f2021320428292a2b3a04323334351a040804100122045a5b5c5d",
    );
    let share = dkg::JustifiedShare { recipient: 5, share: b(100, 4) };
    check("JustifiedShare", &share, "0805120464656667");
    check(
        "Justification",
        &dkg::Justification {
            session: b(1, 4),
            dealer: 1,
            commitments: vec![b(10, 3), b(20, 3)],
            commit_sig: b(30, 4),
            shares: vec![share.clone(), dkg::JustifiedShare { recipient: 6, share: b(110, 4) }],
            signature: b(120, 4),
        },
        "0a040102030410011a030a0b0c1a0314151622041e1f20212a0808051204646566672a08080612046e6f7071320478797a7b",
    );
    check(
        "Done",
        &dkg::Done { session: b(1, 4), from: 3, group_hash: b(130, 4), error: "failed".into() },
        "0a040102030410031a048283848522066661696c6564",
    );
    check("Ack", &dkg::Ack {}, "");
}

// --- skipchain -------------------------------------------------------------------------------

fn roster_entry(i: u8) -> RosterEntry {
    RosterEntry {
        identity: b(i, 4),
        cosi_key: b(i + 50, 3),
        address: format!("tls://s{i}:7770"),
        pop: b(i + 100, 3),
        description: format!("member {i}"),
    }
}

fn link(to: u8, new_roster: bool) -> ForwardLink {
    ForwardLink {
        from: b(1, 4),
        to: b(to, 4),
        new_roster: new_roster.then(|| b(200, 4)),
        signature: Some(CollectiveSignature { signature: b(150, 5), mask: vec![7] }),
        format: 0,
        ..Default::default()
    }
}

fn block(index: u64) -> SkipBlock {
    SkipBlock {
        index,
        height: 2,
        maximum_height: 3,
        base_height: 2,
        back_link_ids: vec![b(11, 4), b(12, 4)],
        genesis_id: b(13, 4),
        data: b(14, 6),
        roster: Some(BlockRoster { members: vec![roster_entry(1), roster_entry(2)] }),
        owners: vec![b(15, 4)],
        hash: b(16, 4),
        forward_links: vec![link(20, false), link(21, true), ForwardLink::default()],
    }
}

#[test]
fn skipchain_messages() {
    check(
        "RosterEntry",
        &roster_entry(1),
        "0a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d6265722031",
    );
    check("BlockRoster", &BlockRoster { members: vec![roster_entry(1), roster_entry(2)] }, "0a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d6265722032");
    check(
        "CollectiveSignature",
        &CollectiveSignature { signature: b(1, 5), mask: vec![1, 2] },
        "0a05010203040512020102",
    );
    check("ForwardLink", &link(20, true), "0a04010203041204141516171a04c8c9cacb220a0a05969798999a120107");
    check("ForwardLink/same roster", &link(20, false), "0a0401020304120414151617220a0a05969798999a120107");
    // The v2 statement format (field 5); the default (v1) is absent, as in every older link.
    check(
        "ForwardLink/v2",
        &ForwardLink { format: 2, ..link(20, false) },
        "0a0401020304120414151617220a0a05969798999a1201072802",
    );
    check("ForwardLink/empty new roster", &ForwardLink { new_roster: Some(Vec::new()), ..Default::default() }, "1a00");
    check("SkipBlock", &block(1_000), "08e8071002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00");
    check("Proof", &Proof { blocks: vec![block(0), block(4)] }, "0ac0011002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a000ac20108041002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00");
    check(
        "GetUpdateChain",
        &GetUpdateChain { from: b(1, 32) },
        "0a200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    );
    check("services Proof", &sc::Proof { blocks: vec![block(0), block(4)] }, "0ac0011002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a000ac20108041002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00");
    check("SubscribeBlocks", &sc::SubscribeBlocks { genesis: b(1, 4), from_index: 300 }, "0a040102030410ac02");
    check(
        "BlockItem",
        &sc::BlockItem {
            block: Some(SkipBlock::default()),
            link: Some(ForwardLink { from: b(1, 2), to: b(3, 2), ..Default::default() }),
        },
        "0a0012080a02010212020304",
    );
    check(
        "services GetUpdateChain",
        &sc::GetUpdateChain { from: b(1, 32) },
        "0a200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    );
    check(
        "CreateChain",
        &sc::CreateChain {
            roster_toml: "[[servers]]".into(),
            base_height: 2,
            maximum_height: 32,
            owners: vec![b(1, 4), b(2, 4)],
            data: b(3, 4),
        },
        "0a0b5b5b736572766572735d5d100218202204010203042204020304052a0403040506",
    );
    check(
        "Append",
        &sc::Append {
            genesis: b(1, 4),
            index: 7,
            data: b(2, 4),
            new_roster_toml: "[[servers]]".into(),
            owner: b(3, 4),
            signature: b(4, 4),
        },
        "0a040102030410071a0402030405220b5b5b736572766572735d5d2a0403040506320404050607",
    );
    check("GetBlock", &sc::GetBlock { hash: b(1, 4), genesis: b(2, 4), index: 9 }, "0a04010203041204020304051809");
    check("BlockReply", &sc::BlockReply { block: Some(block(5)) }, "0ac20108051002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00");
    let level = sc::LevelLink { level: 1, link: Some(link(22, false)) };
    check("LevelLink", &level, "080112180a0401020304120416171819220a0a05969798999a120107");
    let linked = sc::LinkedBlock { block: Some(block(6)), incoming: vec![level.clone(), sc::LevelLink::default()] };
    check("LinkedBlock", &linked, "0ac20108061002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00121c080112180a0401020304120416171819220a0a05969798999a1201071200");
    check("GetBlocks", &sc::GetBlocks { genesis: b(1, 4), from_index: 10, max: 100 }, "0a0401020304100a1864");
    check("Blocks", &sc::Blocks { blocks: vec![linked, sc::LinkedBlock::default()] }, "0ae5010ac20108061002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a00121c080112180a0401020304120416171819220a0a05969798999a12010712000a00");
    check(
        "Latest",
        &sc::Latest { genesis: b(1, 4), index: 11, known: true, arrived_unix_ms: 5 },
        "0a0401020304100b18012005",
    );
    check(
        "Proposal",
        &sc::Proposal { block: Some(block(12)), level: 2, owner: b(1, 4), owner_signature: b(2, 4), ..Default::default() },
        "0ac201080c1002180320022a040b0c0d0e2a040c0d0e0f32040d0e0f103a060e0f1011121342560a290a040102030412033334351a0d746c733a2f2f73313a3737373022036566672a086d656d62657220310a290a040203040512033435361a0d746c733a2f2f73323a3737373022036667682a086d656d62657220324a040f1011125204101112135a180a0401020304120414151617220a0a05969798999a1201075a1e0a04010203041204151617181a04c8c9cacb220a0a05969798999a1201075a0010021a0401020304220402030405",
    );
}

// --- status (Go cothority format) --------------------------------------------------------------

fn server_identity() -> status::ServerIdentityProto {
    status::ServerIdentityProto {
        public: [b"ed.point".as_slice(), &b(1, 4)].concat(),
        service_identities: vec![status::ServiceIdentityProto {
            name: "Cosi".into(),
            suite: "bls12-381".into(),
            public: b(2, 4),
        }],
        id: b(3, 16),
        address: "tls://127.0.0.1:7770".into(),
        description: "a conode".into(),
        url: Some("https://example.org".into()),
    }
}

#[test]
fn status_messages() {
    check("StatusRequest", &status::StatusRequest {}, "");
    let one = status::Status { field: HashMap::from([("Version".to_string(), "0.1.0".to_string())]) };
    check("Status", &one, "0a100a0756657273696f6e1205302e312e30");
    check("ServerIdentity", &server_identity(), "0a0c65642e706f696e740102030412170a04436f73691209626c7331322d3338311a04020304051a10030405060708090a0b0c0d0e0f1011122214746c733a2f2f3132372e302e302e313a373737302a086120636f6e6f64653a1368747470733a2f2f6578616d706c652e6f7267");
    check(
        "ServerIdentity/no url, empty description",
        &status::ServerIdentityProto { url: None, description: String::new(), ..server_identity() },
        "0a0c65642e706f696e740102030412170a04436f73691209626c7331322d3338311a04020304051a10030405060708090a0b0c0d0e0f1011122214746c733a2f2f3132372e302e302e313a37373730",
    );
    check(
        "ServiceIdentity",
        &status::ServiceIdentityProto { name: "Skipchain".into(), suite: "x".into(), public: b(4, 2) },
        "0a09536b6970636861696e1201781a020405",
    );
    check(
        "StatusResponse",
        &status::StatusResponse {
            status: HashMap::from([("Generic".to_string(), one.clone())]),
            serveridentity: Some(server_identity()),
        },
        "0a1d0a0747656e6572696312120a100a0756657273696f6e1205302e312e30126e0a0c65642e706f696e740102030412170a04436f73691209626c7331322d3338311a04020304051a10030405060708090a0b0c0d0e0f1011122214746c733a2f2f3132372e302e302e313a373737302a086120636f6e6f64653a1368747470733a2f2f6578616d706c652e6f7267",
    );
    // Several map entries: the order on the wire is not fixed, so only the round trip is checked.
    let many = status::StatusResponse {
        status: HashMap::from([
            ("Generic".to_string(), one.clone()),
            (
                "Conode".to_string(),
                status::Status { field: HashMap::from([("a".to_string(), "1".to_string()), ("b".into(), "".into())]) },
            ),
        ]),
        serveridentity: None,
    };
    assert_eq!(status::StatusResponse::decode(many.encode_to_vec().as_slice()).unwrap(), many);
}

// --- node-to-node envelope ---------------------------------------------------------------------

// --- membership -------------------------------------------------------------------------------

#[test]
fn membership_messages() {
    use conode_core::services::membership::messages as m;
    let action = m::Action {
        kind: Some(m::action::Kind::AddNode(m::AddNode { public_toml: "[[servers]]".into(), node_data: "{}".into() })),
    };
    let p = m::Proposal {
        network: b(1, 4),
        action: Some(action),
        proposer: b(9, 3),
        created: 1_700_000_000_000,
        signature: b(20, 2),
    };
    let ballot = m::Ballot { proposal_id: b(30, 3), approve: true, member: b(40, 2), signature: b(50, 2) };
    check("Proposal", &p, "0a040102030412130a110a0b5b5b736572766572735d5d12027b7d1a03090a0b2080d095ffbc312a021415");
    check("Ballot", &ballot, "0a031e1f2010011a02282922023233");
    let cfg = m::NetworkConfig {
        kind: m::NETWORK_KIND.into(),
        members: vec![b(60, 2), b(70, 2)],
        members_follow_roster: true,
        threshold: 3,
        node_data: vec![m::NodeData { identity: b(80, 2), json: "{\"a\":1}".into() }],
        passed: Some(m::PassedProposal { proposal: Some(p.clone()), ballots: vec![ballot.clone()] }),
    };
    check(
        "NetworkConfig",
        &cfg,
        "0a11636f6e6f64652d6e6574776f726b2d763112023c3d12024647180120032a0d0a02505112077b2261223a317d323e0a2b0a0401\
         02030412130a110a0b5b5b736572766572735d5d12027b7d1a03090a0b2080d095ffbc312a021415120f0a031e1f2010011a0228\
         2922023233",
    );
    let remove = m::Action { kind: Some(m::action::Kind::RemoveNode(m::RemoveNode { identity: b(5, 2) })) };
    check("Action/RemoveNode", &remove, "12040a020506");
    let threshold = m::Action { kind: Some(m::action::Kind::SetThreshold(m::SetThreshold { threshold: 4 })) };
    check("Action/SetThreshold", &threshold, "1a020804");
    check(
        "JoinRequest",
        &m::JoinRequest { network: b(1, 2), public_toml: "t".into(), node_data: "d".into() },
        "0a0201021201741a0164",
    );
    check(
        "JoinAnswer",
        &m::JoinAnswer { state: "pending".into(), proposal_id: b(2, 2), reason: "r".into(), network_index: 7 },
        "0a0770656e64696e67120202031a01722007",
    );
    check(
        "ProposalStatus",
        &m::ProposalStatus {
            id: b(3, 2),
            proposal: None,
            state: "open".into(),
            yes: 1,
            no: 2,
            needed: 3,
            members: 4,
            reason: "x".into(),
            ballots: vec![ballot],
        },
        "0a0203041a046f70656e20012802300338044201784a0f0a031e1f2010011a02282922023233",
    );
    check("CreateNetwork", &m::CreateNetwork { roster_toml: "r".into(), threshold: 2, members: vec![] }, "0a01721002");
    check(
        "CreateNetwork/members",
        &m::CreateNetwork { roster_toml: "r".into(), threshold: 2, members: vec![b(7, 2), b(9, 1)] },
        "0a017210021a0207081a0109",
    );
    let add = m::Action { kind: Some(m::action::Kind::AddMember(m::AddMember { member: b(5, 2) })) };
    check("Action/AddMember", &add, "22040a020506");
    let rm = m::Action { kind: Some(m::action::Kind::RemoveMember(m::RemoveMember { member: b(5, 2) })) };
    check("Action/RemoveMember", &rm, "2a040a020506");
    check("SyncRequest", &m::SyncRequest { network: b(1, 2), open: vec![b(3, 1)] }, "0a020102120103");
    let open = m::OpenProposals {
        proposals: vec![m::OpenProposal {
            proposal: Some(m::Proposal { network: b(1, 1), created: 2, ..Default::default() }),
            ballots: vec![m::Ballot { proposal_id: b(3, 1), approve: true, member: b(4, 1), signature: b(5, 1) }],
        }],
    };
    check("OpenProposals", &open, "0a140a050a01012002120b0a010310011a0104220105");
    check("NetworkReply", &m::NetworkReply { network: b(4, 2), index: 5, block: b(6, 2) }, "0a02040510051a020607");
    // What members sign (other-language clients must build the same bytes).
    assert_eq!(hex::encode(m::proposal_id(&p)), "9b28297a6d096d4c0320cc33ed8d6a6c032ed70030546bd9daf535978f963b13");
    assert_eq!(
        hex::encode(m::ballot_message(&b(1, 4), &b(30, 3), true)),
        "3681050e982827ba22132fef54236e5a1ab8dc75fd1a57bee807684144b5af99"
    );
}

#[test]
fn envelope() {
    check(
        "Envelope",
        &Envelope {
            version: 1,
            kind: 2,
            id: 1 << 40,
            service: "Cosi".into(),
            protocol: "Announce".into(),
            round_id: b(1, 8),
            payload: b(2, 10),
        },
        "08011002188080808080202204436f73692a08416e6e6f756e6365320801020304050607083a0a02030405060708090a0b",
    );
}

// --- reshare ---------------------------------------------------------------------------------

#[test]
fn reshare_messages() {
    use conode_core::services::dkg::reshare as rs;
    let config = rs::ReshareConfig {
        members: vec![dkg_member(1), dkg_member(2)],
        old_members: vec![dkg_member(3)],
        old_group_toml: "Threshold = 2".into(),
        threshold: 2,
        transition_round: 1000,
        phase_timeout_ms: 5000,
        leader: b(60, 4),
        nonce: b(70, 3),
    };
    check("ReshareConfig", &config, "0a1d0a0401020304120d746c733a2f2f64313a373737301a066e6f646520310a1d0a0402030405120d746c733a2f2f64323a373737301a066e6f64652032121d0a0403040506120d746c733a2f2f64333a373737301a066e6f646520331a0d5468726573686f6c64203d2032200228e8073088273a043c3d3e3f4203464748");
    check("ResharePrepare", &rs::ResharePrepare { config: Some(config) }, "0a7f0a1d0a0401020304120d746c733a2f2f64313a373737301a066e6f646520310a1d0a0402030405120d746c733a2f2f64323a373737301a066e6f64652032121d0a0403040506120d746c733a2f2f64333a373737301a066e6f646520331a0d5468726573686f6c64203d2032200228e8073088273a043c3d3e3f4203464748");
    check("ReshareGo", &rs::ReshareGo { session: b(1, 4), dealers: vec![0, 3, 300] }, "0a040102030412040003ac02");
    let responses = dkg::Responses {
        session: b(1, 4),
        from: 2,
        entries: vec![dkg::ResponseEntry { dealer: 4, status: dkg::status::APPROVE, ..Default::default() }],
        signature: b(90, 4),
    };
    check(
        "ReshareFinish",
        &rs::ReshareFinish { session: b(1, 4), responses: vec![responses], dealers: vec![0, 2], signature: b(200, 2) },
        "0a040102030412140a040102030410021a040804100122045a5b5c5d1a0200022202c8c9",
    );
    check("ReshareFetch", &rs::ReshareFetch { session: b(1, 4) }, "0a0401020304");
    check(
        "ReshareDone",
        &rs::ReshareDone { session: b(1, 4), group_hash: b(130, 4), error: "late".into(), qualified: vec![0, 1, 3] },
        "0a04010203041204828384851a046c6174652203000103",
    );
    check(
        "ReshareRequest",
        &rs::ReshareRequest {
            roster_toml: "[[servers]]".into(),
            threshold: 3,
            phase_timeout_ms: 2000,
            transition_round: 77,
        },
        "0a0b5b5b736572766572735d5d100318d00f204d",
    );
    check(
        "ReshareResponse",
        &rs::ReshareResponse {
            group_toml: "Threshold = 3".into(),
            transition_round: 77,
            chain_hash: "ab".into(),
            qualified: vec![0, 2],
            confirmed: 5,
            participants: 6,
            log: vec!["ok".into()],
        },
        "0a0d5468726573686f6c64203d2033104d1a02616222020002280530063a026f6b",
    );
}

// --- one definition ----------------------------------------------------------------------------

#[test]
fn every_proto_file_is_compiled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("proto/")
        .map(|e| e.expect("proto/ entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".proto"))
        .collect();
    found.sort();
    assert_eq!(found, conode_core::wire::PROTO_FILES);
}

#[test]
fn modules_reexport_the_generated_types() {
    // Each line compiles only while both paths name the same type.
    let _: conode_core::wire::skipchain::Proof = sc::Proof::default();
    let _: Proof = sc::Proof::default();
    let _: GetUpdateChain = sc::GetUpdateChain::default();
    let _: SkipBlock = conode_core::wire::skipchain::SkipBlock::default();
    let _: cosi::Exclusion = beacon::Exclusion::default();
    let _: Envelope = conode_core::wire::network::Envelope::default();
    let _: status::StatusResponse = conode_core::wire::status::Response::default();
    let _: conode_core::services::membership::messages::Ballot = conode_core::wire::membership::Ballot::default();
}
