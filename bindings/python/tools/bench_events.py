"""Latency from a skipchain block being stored to its event reaching a Python subscriber.

A 4-node LocalCluster; a Python thread iterates ``cluster.events(i)`` and, for each
``block_stored`` event of the chain, takes ``now - time_us`` (``time_us`` is stamped by the node
right after the block's durable commit). The main thread appends ``--appends`` blocks through node
0. Prints one JSON line per subscribed member (the leader, which stores the block itself, and a
member that receives it) with p50/p90/p99/max in microseconds. A benchmark, not a test:

    python bindings/python/tools/bench_events.py --appends 1000
"""

import argparse
import json
import threading
import time

import conode


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=4)
    a = ap.parse_args()
    with conode.LocalCluster(a.nodes) as c:
        owner = conode.IdentityKey.generate()
        genesis = c.create_skipchain([owner])
        g = genesis.hash.hex()
        results = {}

        def follow(i: int, events: conode.Events) -> None:
            lat = []
            for e in events:
                if e["kind"] == "block_stored" and e["chain"] == g:
                    lat.append(time.time_ns() // 1000 - e["time_us"])
                    if e["index"] == a.appends:
                        break
                elif e["kind"] == "lagged":
                    results[f"lagged_{i}"] = e["missed"]
            results[i] = lat

        threads = [threading.Thread(target=follow, args=(i, c.events(i))) for i in (0, 1)]
        for t in threads:
            t.start()
        start = time.monotonic()
        for n in range(a.appends):
            c.append_block(genesis.hash, f"block {n + 1}".encode(), owner)
        elapsed = time.monotonic() - start
        for t in threads:
            t.join(60)
        for i in (0, 1):
            lat = sorted(results.get(i, []))
            print(
                json.dumps(
                    {
                        "bench": "event_latency_block_stored_to_python",
                        "member": "leader" if i == 0 else "follower",
                        "nodes": a.nodes,
                        "appends": a.appends,
                        "events": len(lat),
                        "lagged": results.get(f"lagged_{i}", 0),
                        "p50_us": percentile(lat, 50),
                        "p90_us": percentile(lat, 90),
                        "p99_us": percentile(lat, 99),
                        "max_us": lat[-1] if lat else None,
                        "appends_per_s": round(a.appends / elapsed, 1),
                    }
                )
            )


if __name__ == "__main__":
    main()
