#!/usr/bin/env python3
"""Lists what the feature-alignment block of bindings/python/Cargo.toml lacks.

maturin builds conode-python alone, and the fuzz smoke builds conode-fuzz with conode-python
(whose block aligns both); their dependencies are reused from the workspace build only if every
unit (crate, features, profile, dependencies) is identical. This compares the unit graphs of
`-p PACKAGE...` and `--workspace --all-targets` (nightly cargo's --unit-graph; nothing is built)
and prints the lowest units that differ, with the workspace's variants. Exit status 1 if any.

Usage (from the repository root): python3 bindings/python/tools/feature_alignment.py [PACKAGE...]
(default: conode-python; the fuzz smoke's selection: conode-fuzz conode-python)
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
    packages = sys.argv[1:] or ["conode-python"]
    package = " ".join(packages)
    py = unit_graph(*[arg for p in packages for arg in ("-p", p)])
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
