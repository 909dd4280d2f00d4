"""The randomness beacon from Python (period 1 s): chains of both drand schemes started by a DKG on a
LocalCluster; their beacons verify with verify_beacon (objects and drand JSON) and fail when
tampered or checked under the wrong chain."""

import json
import pathlib
import time

import pytest

import conode


@pytest.fixture(params=["chained", "quicknet"])
def beacon(request):
    return request.getfixturevalue(request.param)


def test_latest_verifies(beacon):
    chain, info = beacon.chain, beacon.chain.info
    assert info.period == 1 and info.scheme in ("pedersen-bls-chained", "bls-unchained-g1-rfc9380")
    assert len(info.public_key) == (48 if info.scheme == "pedersen-bls-chained" else 96)
    assert len(info.hash) == 64 and chain.qualified
    latest = chain.latest()
    assert latest.round >= 1
    assert conode.verify_beacon(info, latest) == latest
    info.verify(latest)
    chain.verify(latest)
    assert len(latest.signature) == (96 if info.scheme == "pedersen-bls-chained" else 48)
    assert len(latest.randomness) == 32
    # Round 1 from another member is the same beacon. That member may have missed round 1 (a
    # threshold of the others produced it) and catches it up from them: wait for it.
    assert chain.round(1, timeout=10, node=-1) == beacon.round1
    # Waiting for the next round (readiness: the chain's own progress).
    nxt = chain.round(latest.round + 1, timeout=10)
    conode.verify_beacon(info, nxt)
    if info.scheme == "pedersen-bls-chained":
        assert nxt.previous_signature == latest.signature
        assert beacon.round1.previous_signature == info.genesis_seed
    else:
        assert nxt.previous_signature is None
    # Rounds are due on drand's schedule.
    due = info.time_of_round(nxt.round)
    assert due is not None and info.round_at(due) == nxt.round
    assert info.round_at(time.time()) >= nxt.round - 1


def test_batch_verification_gives_the_one_by_one_verdicts(beacon):
    chain, info = beacon.chain, beacon.chain.info
    latest = chain.round(6, timeout=30)
    rounds = [chain.round(r) for r in range(1, latest.round + 1)]
    assert conode.verify_beacons(info, rounds) == [None] * len(rounds)
    assert conode.verify_beacons(info.to_json(), [b.to_json() for b in rounds]) == [None] * len(rounds)
    assert conode.verify_beacons(info, []) == []
    # Two rounds with their signatures swapped (each a valid point, of another round) and one
    # with a flipped bit: exactly those fail, with verify_beacon's reasons.
    docs = [json.loads(b.to_json()) for b in rounds]
    for d in docs:
        del d["randomness"]
    docs[1]["signature"], docs[4]["signature"] = docs[4]["signature"], docs[1]["signature"]
    flipped = bytearray.fromhex(docs[2]["signature"])
    flipped[-1] ^= 1
    docs[2]["signature"] = flipped.hex()
    texts = [json.dumps(d) for d in docs]
    verdicts = conode.verify_beacons(info, texts)
    assert [i for i, v in enumerate(verdicts) if v is not None] == [1, 2, 4]
    for text, verdict in zip(texts, verdicts):
        try:
            conode.verify_beacon(info, text)
            single = None
        except conode.VerifyError as e:
            single = str(e)
        assert verdict == single
    with pytest.raises(ValueError):
        conode.verify_beacons(info, ["{not json"])


def test_json_round_trip_and_tampering(beacon):
    info, b = beacon.chain.info, beacon.round1
    info_json, beacon_json = info.to_json(), b.to_json()
    assert json.loads(info_json)["schemeID"] == info.scheme
    assert conode.ChainInfo.from_json(info_json) == info
    assert conode.Beacon.from_json(beacon_json) == b
    assert conode.verify_beacon(info_json, beacon_json) == b

    doc = json.loads(beacon_json)
    sig = bytearray.fromhex(doc["signature"])
    sig[-1] ^= 1
    doc["signature"] = sig.hex()
    del doc["randomness"]
    with pytest.raises(conode.VerifyError):
        conode.verify_beacon(info, json.dumps(doc))
    wrong_round = dict(json.loads(beacon_json), round=b.round + 1)
    del wrong_round["randomness"]
    with pytest.raises(conode.VerifyError, match="does not verify"):
        conode.verify_beacon(info_json, json.dumps(wrong_round))
    # randomness must be sha256(signature)
    bad_rand = dict(json.loads(beacon_json), randomness="00" * 32)
    with pytest.raises(conode.VerifyError, match="randomness"):
        conode.Beacon.from_json(json.dumps(bad_rand))
    # The chain hash covers the period.
    forged = dict(json.loads(info_json), period=2)
    with pytest.raises(conode.VerifyError, match="chain hash mismatch"):
        conode.ChainInfo.from_json(json.dumps(forged))
    with pytest.raises(ValueError):
        conode.ChainInfo.from_json("{")
    with pytest.raises(ValueError, match="signature"):
        conode.Beacon.from_json('{"round": 1}')


def test_chains_do_not_verify_each_other(chained, quicknet):
    with pytest.raises(conode.VerifyError):
        conode.verify_beacon(quicknet.chain.info, chained.round1)
    with pytest.raises(conode.VerifyError):
        conode.verify_beacon(chained.chain.info, quicknet.round1)


def test_unavailable_rounds_and_second_dkg(chained):
    with pytest.raises(conode.NotFoundError, match="round 1000000 is not available"):
        chained.chain.round(1_000_000)
    with pytest.raises(conode.NotFoundError, match="after waiting"):
        chained.chain.round(1_000_000, timeout=0.05)
    with pytest.raises(conode.RefusedError):
        chained.cluster.start_beacon()
    with pytest.raises(ValueError, match="unknown beacon scheme"):
        chained.cluster.start_beacon("bls-bn254")
    with pytest.raises(ValueError, match="timeout"):
        chained.chain.round(1, timeout=-1)



VECTORS = pathlib.Path(__file__).resolve().parents[3] / "tests" / "vectors" / "drand.json"


def _without_randomness(vector, **changes):
    out = {k: v for k, v in vector.items() if k != "randomness"}
    out.update(changes)
    return json.dumps(out)


@pytest.mark.parametrize("chain", json.loads(VECTORS.read_text())["chains"], ids=lambda c: c["name"])
def test_league_of_entropy_vectors(chain):
    """Real beacons of drand's mainnet (chained) and quicknet verify; any change to them does not."""
    info = conode.ChainInfo.from_json(json.dumps(chain))
    assert info.scheme == chain["scheme"] and info.hash == chain.get("hash", chain.get("chain_hash"))
    for vector in chain["beacons"]:
        beacon = conode.Beacon.from_json(json.dumps(vector))
        assert conode.verify_beacon(info, beacon) == beacon
        if "randomness" in vector:
            assert beacon.randomness.hex() == vector["randomness"]
        for field in ("signature", "previous_signature"):
            if field in vector:
                raw = bytearray.fromhex(vector[field])
                raw[-1] ^= 1
                with pytest.raises(conode.VerifyError):
                    conode.verify_beacon(info, _without_randomness(vector, **{field: raw.hex()}))
        with pytest.raises(conode.VerifyError):
            conode.verify_beacon(info, _without_randomness(vector, round=vector["round"] + 1))
