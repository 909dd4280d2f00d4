"""Skipchains from Python: create, owner-signed appends, a short proof that verify_skipchain accepts
from the trusted genesis and rejects when tampered, non-owners refused, owner keys."""

import math

import pytest

import conode


@pytest.fixture(scope="module")
def cluster(chained):
    # The 4-node cluster of the chained beacon: skipchains run beside it.
    return chained.cluster


def test_round_trip_with_proof(cluster):
    owner = conode.IdentityKey.generate()
    genesis = cluster.create_skipchain([owner], b"genesis data", base_height=2, maximum_height=4)
    assert genesis.index == 0 and genesis.data == b"genesis data"
    assert genesis.genesis_id == genesis.hash and len(genesis.hash) == 32
    assert genesis.owners == [owner.public_key]
    assert [m.public_key for m in genesis.roster.members] == [m.public_key for m in cluster.members]

    blocks = [cluster.append_block(genesis.hash, f"block {i} payload".encode(), owner) for i in range(1, 11)]
    assert [b.index for b in blocks] == list(range(1, 11))
    assert all(b.genesis_id == genesis.hash for b in blocks)
    assert blocks[3].back_links[0] == blocks[2].hash  # block 4 links back to block 3 ...
    assert blocks[3].back_links[2] == genesis.hash  # ... and, at level 2, to the genesis

    proof = cluster.skipchain_proof(genesis.hash)
    assert proof[0].hash == genesis.hash and proof[-1] == blocks[-1]
    assert len(proof) - 1 <= math.ceil(math.log2(11)) + 1  # O(log n) hops
    newest = conode.verify_skipchain(genesis.hash, proof)
    assert newest.index == 10 and newest.data == b"block 10 payload"
    # From a later trusted block too.
    later = cluster.skipchain_proof(blocks[4].hash)
    assert conode.verify_skipchain(blocks[4].hash, later).index == 10

    # Blocks survive the wire encoding.
    again = [conode.SkipBlock.from_bytes(b.to_bytes()) for b in proof]
    assert again == proof
    assert conode.verify_skipchain(genesis.hash, again).hash == newest.hash

    # Tampering.
    with pytest.raises(conode.VerifyError, match="trusted"):
        conode.verify_skipchain(blocks[0].hash, proof)
    with pytest.raises(conode.VerifyError, match="forward link"):
        conode.verify_skipchain(genesis.hash, [proof[0], proof[-1]] if len(proof) > 2 else [proof[0], blocks[0]])
    raw = proof[-1].to_bytes()
    assert raw.count(b"block 10 payload") == 1
    forged = conode.SkipBlock.from_bytes(raw.replace(b"block 10 payload", b"block 10 pAyload"))
    with pytest.raises(conode.VerifyError, match="hash does not match"):
        conode.verify_skipchain(genesis.hash, proof[:-1] + [forged])
    with pytest.raises(conode.VerifyError, match="empty"):
        conode.verify_skipchain(genesis.hash, [])
    with pytest.raises(ValueError):
        conode.SkipBlock.from_bytes(b"\xff\xff\xff")


def test_only_owners_append(cluster):
    owner = conode.IdentityKey.generate()
    other_owner = conode.IdentityKey.generate()
    # Owners by key object or by hex public key.
    genesis = cluster.create_skipchain([owner, other_owner.public_key])
    assert set(genesis.owners) == {owner.public_key, other_owner.public_key}
    intruder = conode.IdentityKey.generate()
    with pytest.raises(conode.RefusedError, match="not an owner"):
        cluster.append_block(genesis.hash, b"x", intruder)
    assert cluster.append_block(genesis.hash, b"x", other_owner).index == 1
    assert cluster.append_block(genesis.hash, b"y", owner, node=2).index == 2
    with pytest.raises(conode.NotFoundError, match="unknown chain"):
        cluster.append_block(b"\x00" * 32, b"x", owner)
    with pytest.raises(conode.NotFoundError, match="unknown block"):
        cluster.skipchain_proof(b"\x01" * 32)
    with pytest.raises(ValueError, match="owner"):
        cluster.create_skipchain(["not hex"])
    with pytest.raises(ValueError, match="owner"):
        cluster.create_skipchain([])
    with pytest.raises(IndexError):
        cluster.append_block(genesis.hash, b"x", owner, node=9)


def test_identity_key():
    k = conode.IdentityKey.generate()
    assert len(k.public_key) == 64 and bytes.fromhex(k.public_key) == k.public_bytes
    secret = k.secret_hex()
    assert secret not in repr(k) and k.public_key in repr(k)
    same = conode.IdentityKey.from_secret_hex(secret)
    assert same.public_key == k.public_key
    assert len(k.sign(b"message")) == 64 and k.sign(b"message") == same.sign(b"message")
    with pytest.raises(ValueError, match="secret key"):
        conode.IdentityKey.from_secret_hex("abcd")
