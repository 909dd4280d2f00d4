"""Drives headless chromium (through chromedriver's W3C WebDriver HTTP API, stdlib only) against the
roster status page of a local cothority, and asserts what an operator relies on:

- the page loads without console errors (chromium's browser log, level SEVERE);
- every member of the roster is listed in the beacon group, reachable;
- a new beacon round shows up without a reload (a marker set in the page survives);
- a stopped member is shown unreachable within a few seconds;
- nothing overflows sideways on a phone-sized window.

A screenshot is kept in the output folder. Usage (tests/run-browser.sh calls it):
  roster_page.py URL ROSTER_KEYS_FILE STOP_PID OUT_DIR
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

STOPPED_WITHIN = 8.0  # seconds from the member's stop to the page showing it unreachable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, out_dir):
        self.port = free_port()
        log = open(os.path.join(out_dir, "chromedriver.log"), "w")
        self.proc = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"], stdout=log, stderr=subprocess.STDOUT
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                if self.call("GET", "/status")["value"]["ready"]:
                    break
            except (OSError, urllib.error.URLError, KeyError):
                pass
            if time.time() > deadline:
                raise SystemExit("chromedriver did not become ready in 20 s")
            time.sleep(0.2)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=412,915",  # a phone
                        ],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["value"]["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"webdriver {method} {path}: {e.code} {e.read()[:500]!r}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)["value"]

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def console_errors(self):
        entries = self.s("POST", "/se/log", {"type": "browser"})
        return [e for e in entries if e.get("level") == "SEVERE"]

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(10)


def wait(what, secs, probe):
    deadline = time.time() + secs
    while True:
        v = probe()
        if v:
            return v
        if time.time() > deadline:
            raise SystemExit(f"FAIL: {what} not seen within {secs} s")
        time.sleep(0.25)


BEACON_ROWS = """
const sec = document.querySelector('section[data-kind="beacon"]');
if (!sec) return null;
const round = sec.querySelector('[data-fact="latest_round"]');
return {
  round: round ? Number(round.textContent) : null,
  marker: window.__noReload === true,
  state: document.getElementById('state').textContent,
  members: [...sec.querySelectorAll('tr[data-member]')].map(r => ({
    key: r.dataset.member, reachable: r.dataset.reachable === 'true',
    text: r.textContent })),
};
"""


def main():
    url, keys_file, stop_pid, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    keys = [k.strip() for k in open(keys_file) if k.strip()]
    os.makedirs(out_dir, exist_ok=True)
    d = Driver(out_dir)
    try:
        d.s("POST", "/url", {"url": url})
        title = d.js("return document.title")
        print(f"page loaded: {title!r}")

        def all_listed():
            v = d.js(BEACON_ROWS)
            if not v or v["round"] is None:
                return None
            listed = [m["key"] for m in v["members"]]
            return v if listed == keys and all(m["reachable"] for m in v["members"]) else None

        # The node's membership state, as /node/state gives it, is on the page.
        with urllib.request.urlopen(url.rstrip("/") + "/node/state") as r:
            state = json.load(r)["state"]
        wait("the membership state", 15, lambda: d.js("return document.getElementById('membership').getAttribute('data-state')") == state or None)
        print(f"membership state {state!r} shown")

        v = wait("every member listed and reachable", 30, all_listed)
        print(f"every member listed ({len(keys)}), all reachable; round {v['round']}")

        # A new round without a reload: the marker set now must still be there.
        d.js("window.__noReload = true")
        first = v["round"]
        v = wait("a newer beacon round", 15, lambda: (lambda x: x if x and x["round"] > first and x["marker"] else None)(d.js(BEACON_ROWS)))
        print(f"round {first} -> {v['round']} shown without a reload")

        # Nothing overflows sideways on the phone-sized window.
        overflow = d.js("return document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            raise SystemExit(f"FAIL: the page is {overflow}px wider than a phone screen")

        d.screenshot(os.path.join(out_dir, "roster-page.png"))

        # A stopped member is shown unreachable within a few seconds.
        os.kill(stop_pid, signal.SIGKILL)
        stopped = time.time()
        stopped_key = keys[-1]

        def shown_down():
            x = d.js(BEACON_ROWS)
            if not x:
                return None
            row = next((m for m in x["members"] if m["key"] == stopped_key), None)
            return x if row and not row["reachable"] and x["marker"] else None

        v = wait("the stopped member unreachable", STOPPED_WITHIN, shown_down)
        took = time.time() - stopped
        others = [m for m in v["members"] if m["key"] != stopped_key]
        if not all(m["reachable"] for m in others):
            raise SystemExit(f"FAIL: a running member shown unreachable: {others}")
        print(f"stopped member shown unreachable after {took:.1f} s, without a reload")
        d.screenshot(os.path.join(out_dir, "roster-page-member-down.png"))

        errors = d.console_errors()
        if errors:
            raise SystemExit(f"FAIL: console errors: {json.dumps(errors, indent=1)}")
        print("no console errors")
    finally:
        d.close()
    print(f"screenshots in {out_dir}")


if __name__ == "__main__":
    main()
