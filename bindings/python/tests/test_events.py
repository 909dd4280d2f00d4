"""Node events from Python: each cluster member's subscription sees every appended block once and
in order (iterator, async iterator and next_event), waiting releases the GIL, a stopped member
shows as peer_down then peer_up, and a node's own subscription sees its stop and start and ends
when the node is closed."""

import asyncio
import time

import conode


def blocks(events, genesis_hex, last, timeout=30.0):
    """Indices of block_stored events of one chain, until index `last` (fails after `timeout`)."""
    out = []
    deadline = time.monotonic() + timeout
    while not out or out[-1] < last:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out with {out}"
        e = events.next_event(left)
        if e is not None and e["kind"] == "block_stored" and e["chain"] == genesis_hex:
            out.append(e["index"])
    return out


def test_block_events_in_order_once_per_subscriber(ticker):
    with conode.LocalCluster(3) as c:
        subs = [c.events(0), c.events(1), c.events(-1)]
        owner = conode.IdentityKey.generate()
        genesis = c.create_skipchain([owner], b"g")
        for i in range(1, 11):
            c.append_block(genesis.hash, f"b{i}".encode(), owner)
        g = genesis.hash.hex()
        for s in subs:
            assert blocks(s, g, 10) == list(range(11))

        # The iterator form.
        it = c.events(2)
        c.append_block(genesis.hash, b"b11", owner)
        for e in it:
            if e["kind"] == "block_stored":
                assert e["index"] == 11 and e["chain"] == g and len(e["hash"]) == 64
                break
        rest = [it.next_event(0) for _ in range(it.queued)]
        assert not any(e is not None and e["kind"] == "block_stored" for e in rest), rest

        # Waiting for nothing: the GIL is free meanwhile.
        quiet = c.events(0)
        with ticker:
            assert quiet.next_event(0.3) is None
        assert ticker.count > 10


def test_async_iteration_sees_new_blocks():
    with conode.LocalCluster(3) as c:
        owner = conode.IdentityKey.generate()
        genesis = c.create_skipchain([owner])
        g = genesis.hash.hex()

        async def follow():
            got = []
            async for e in c.events(1):
                if e["kind"] == "block_stored" and e["chain"] == g:
                    got.append(e["index"])
                    if len(got) == 3:
                        return got
            return got

        async def main():
            task = asyncio.ensure_future(follow())
            await asyncio.sleep(0.1)
            loop = asyncio.get_running_loop()
            for i in range(3):
                await loop.run_in_executor(None, c.append_block, genesis.hash, b"x", owner)
            return await asyncio.wait_for(task, 30)

        assert asyncio.run(main()) == [1, 2, 3]


def test_stopped_member_gives_peer_down_then_peer_up():
    with conode.LocalCluster(4) as c:
        ev = c.events(0)
        down = c.members[3].public_key
        c.stop(3)
        c.sign(b"with a member down", timeout=2.0)
        kinds = []
        deadline = time.monotonic() + 30
        while "peer_up" not in kinds:
            assert time.monotonic() < deadline, kinds
            e = ev.next_event(1.0)
            if e is not None and e.get("peer") == down:
                kinds.append(e["kind"])
                if e["kind"] == "peer_down" and kinds.count("peer_down") == 1:
                    c.restart(3)
        assert kinds == ["peer_down", "peer_up"]


def test_node_events_follow_its_lifecycle_and_end_when_closed(tmp_path):
    cfg = conode.NodeConfig.generate("127.0.0.1", 0, "events")
    node = conode.Node(cfg, data_dir=tmp_path)
    ev = node.events()
    node.start()
    assert ev.next_event(10)["kind"] == "node_started"
    node.stop()
    assert ev.next_event(10)["kind"] == "node_stopping"
    node.close()
    assert ev.next_event(1) is None and ev.closed
    assert list(ev) == []
