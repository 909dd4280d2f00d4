"""100 conodes in one Python process: start, a few statuses over the client port, memory.

The measurement runs in a fresh interpreter so the RSS figures are not blurred by the memory
earlier tests left to the allocator.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import report_path

N = 100

CHILD = r"""
import json, sys, time
import conode

def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

n = int(sys.argv[1])
before = rss_kib()
t0 = time.monotonic()
with conode.LocalCluster(n) as c:
    started = time.monotonic() - t0
    members = c.members
    checked = 0
    for i in sorted({0, 1, n // 2, n - 2, n - 1}):
        st = conode.status(members[i].client_url)
        assert st["ServerIdentity"]["Public"] == members[i].public_key, i
        checked += 1
    assert all(c.is_running(i) for i in range(n))
    time.sleep(1.0)  # let the nodes settle (idle)
    running = rss_kib()
    t1 = time.monotonic()
stopped = time.monotonic() - t1
print(json.dumps({"n": n, "before_kib": before, "running_kib": running, "after_kib": rss_kib(),
                  "started_s": started, "stopped_s": stopped, "checked": checked}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_hundred_nodes(capsys):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(N)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["checked"] == 5
    per_node = (r["running_kib"] - r["before_kib"]) / N
    line = (
        f"python LocalCluster({N}) in one process: started in {r['started_s']:.2f}s, "
        f"stopped in {r['stopped_s']:.2f}s; RSS {r['before_kib'] / 1024:.1f} MiB after `import conode`, "
        f"{r['running_kib'] / 1024:.1f} MiB with {N} idle nodes running ({per_node:.0f} KiB per node)"
    )
    with open(report_path(), "a") as f:
        f.write(line + "\n")
    with capsys.disabled():
        print(f"\nCONODE-PY-RSS: {line}")
