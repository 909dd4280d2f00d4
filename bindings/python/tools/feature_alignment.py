#!/usr/bin/env python3
"""Lists what the feature-alignment block of a package built alone lacks.

maturin builds conode-python alone, and the fuzz smoke builds conode-fuzz alone; their
dependencies are reused from the workspace build only if every unit (crate, features, profile,
dependencies) is identical. This compares the unit graphs of `-p PACKAGE` and `--workspace
--all-targets` (nightly cargo's --unit-graph; nothing is built) and prints the lowest units that
differ, with the workspace's variants. Exit status 1 if any. The package's own workspace crates
(conode-core for the fuzz targets) differ as well when their features do.

Usage (from the repository root): python3 bindings/python/tools/feature_alignment.py [PACKAGE]
(PACKAGE: conode-python by default, or conode-fuzz)
"""

import hashlib
import json
import subprocess
import sys


def unit_graph(*args: str) -> list:
    out = subprocess.run(
        ["cargo", "+nightly", "build", "-Z", "unstable-options", "--unit-graph", "--locked", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["units"]


def identities(units: list) -> list:
    memo: dict = {}

    def ident(i: int) -> str:
        if i not in memo:
            u = units[i]
            deps = sorted(ident(d["index"]) + ":" + d["extern_crate_name"] for d in u["dependencies"])
            key = [u["pkg_id"], u["target"]["name"], u["target"]["kind"], u["mode"], sorted(u["features"]),
                   json.dumps(u["profile"], sort_keys=True), deps]
            memo[i] = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        return memo[i]

    return [ident(i) for i in range(len(units))]


def main() -> int:
    package = sys.argv[1] if len(sys.argv) > 1 else "conode-python"
    py = unit_graph("-p", package)
    ws = unit_graph("--workspace", "--all-targets")
    py_ids, ws_ids = identities(py), set(identities(ws))
    bad = {i for i, h in enumerate(py_ids) if h not in ws_ids}
    roots = [i for i in sorted(bad) if not any(d["index"] in bad for d in py[i]["dependencies"])]
    for i in roots:
        u = py[i]
        print(f"{u['pkg_id'].split('#')[-1]} {u['target']['name']} ({u['mode']}): "
              f"features {u['features']}, debuginfo {u['profile'].get('debuginfo')}")
        for w in ws:
            if (w["pkg_id"], w["target"]["name"], w["mode"]) == (u["pkg_id"], u["target"]["name"], u["mode"]):
                print(f"    workspace: features {w['features']}, debuginfo {w['profile'].get('debuginfo')}")
    print(f"{len(bad)} of {len(py)} units of {package} differ from the workspace build"
          + (f" ({len(roots)} at the root)" if roots else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
