#!/usr/bin/env python3
"""Browser test of the dashboard at `GET /` (issue 5 item 3), in Debian's headless Chromium.

Starts a real `flotilla up` (debug binary, the demo app as instances, ephemeral ports on
127.0.0.1), sends it a bounded burst of requests, scales the group once (an operator activity),
then loads the page in Chromium and checks the DOM it rendered against `flotilla status --json`
and `flotilla activities --json`: the group, every instance id in its zone's column, the zones,
the newest activity's cause, the cluster name as text (it holds markup, which must not become
elements), and the four charts (requests, latency, capacity, cost) with datapoints. A screenshot goes to target/dashboard-test/.

A second Flotilla with a non-loopback admin bind checks the token flow: without a token the
page asks for one and shows no data; with `/#token=…` it shows the instances.

Every Flotilla and Chromium it starts is ended by PID (Chromium by the process group it was
started in); every wait has a deadline. Stdlib only.
"""

import html.parser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "debug" / "flotilla"
OUT = ROOT / "target" / "dashboard-test"
TOKEN = "dashboard-test-token"
# Markup in a user-chosen name: the page must show it as text, never as an element.
CLUSTER_NAME = 'drill <img src=x onerror="document.title=\'pwned\'"> & <b>co</b>'
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1400,1050",
]

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(admin_bind, listener_port):
    name = CLUSTER_NAME.replace("\\", "\\\\").replace('"', '\\"')
    return f"""
[cluster]
name = "{name}"
zones = ["az-a", "az-b", "az-c"]
admin_bind = "{admin_bind}"

[launch_templates.web]
command = ["{{flotilla}}", "demo-app"]
stop_timeout = "2s"

[target_groups.web]
deregistration_delay = "1s"

[target_groups.web.health_check]
path = "/health"
interval = "500ms"
timeout = "250ms"
healthy_threshold = 2

[load_balancers.front]
type = "application"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener_port}"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 1
max_size = 4
desired_capacity = 2
health_check_type = "elb"
health_check_grace_period = "1s"
"""


class Flotilla:
    """One `flotilla up` in its own directory; `stop` ends it by PID (TERM, then KILL)."""

    def __init__(self, work, name, admin_host, token=None):
        self.dir = work / name
        self.dir.mkdir()
        self.admin_port, self.listener_port = free_port(), free_port()
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.token = token
        path = self.dir / "flotilla.toml"
        path.write_text(config(f"{admin_host}:{self.admin_port}", self.listener_port))
        env = dict(os.environ)
        env.pop("FLOTILLA_ADMIN_TOKEN", None)
        if token:
            env["FLOTILLA_ADMIN_TOKEN"] = token
        self.log = open(self.dir / "flotilla.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "up", str(path)], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

    def cli(self, *args):
        cmd = [str(BIN), *args, "--admin", self.admin]
        if self.token:
            cmd += ["--token", self.token]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True)
        return json.loads(out.stdout) if "--json" in args else out.stdout

    def get(self, path):
        request = urllib.request.Request(self.admin + path)
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.load(r)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def tail(self):
        return (self.dir / "flotilla.log").read_text(errors="replace")[-3000:]


def wait_for(what, timeout, f):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = f()
            if value:
                return value
        except Exception as e:  # not up yet: retry until the deadline
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def chromium(url, *args, timeout=60):
    """Runs one headless Chromium on `url`; returns its stdout. Ends its whole process group."""
    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out.decode(errors="replace")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group Chromium was started in, by its PID
        except ProcessLookupError:
            pass
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(url):
    return chromium(url, "--virtual-time-budget=6000", "--dump-dom")


def screenshot(url, path):
    chromium(url, "--virtual-time-budget=6000", f"--screenshot={path}")


class Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM (tag, attributes, own text, parent index)."""

    # HTML's void elements; the dump closes every other one (SVG's included) explicitly.
    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr", "area", "base", "col"}

    def __init__(self, text):
        super().__init__()
        self.elements = []
        self.stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parents": list(self.stack)})
        if tag not in self.VOID:
            self.stack.append(len(self.elements) - 1)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parents": list(self.stack)})

    def handle_endtag(self, tag):
        if any(self.elements[i]["tag"] == tag for i in self.stack):
            while self.elements[self.stack.pop()]["tag"] != tag:
                pass

    def handle_data(self, data):
        for i in self.stack:
            self.elements[i]["text"] += data

    def find(self, tag=None, **attrs):
        return [e for e in self.elements
                if (tag is None or e["tag"] == tag)
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag=None, **attrs):
        found = self.find(tag, **attrs)
        return found[0] if found else {"tag": None, "attrs": {}, "text": "", "parents": []}

    def text(self):
        body = self.find("body")
        return body[0]["text"] if body else ""


def send_requests(f, n):
    """A bounded burst: `n` requests, 2 s timeout each, some waiting a few ms at the instance."""
    ok = 0
    for i in range(n):
        url = f"http://127.0.0.1:{f.listener_port}/sleep?ms={i % 25}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                ok += r.status == 200
        except OSError:
            pass
    return ok


def main():
    global CHROMIUM
    # `timeout` in .ci/run sends TERM: leave through the `finally` that stops every Flotilla.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("dashboard test: stopped by SIGTERM"))
    CHROMIUM = shutil.which("chromium")
    if not CHROMIUM:
        sys.exit("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    subprocess.run(["cargo", "build", "--quiet", "--bin", "flotilla"], cwd=ROOT, check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dashboard-test-"))
    started = []
    try:
        # --- loopback admin API: no token --------------------------------------------------
        f = Flotilla(work, "loopback", "127.0.0.1")
        started.append(f)
        wait_for("2 healthy instances in service", 60, lambda: (
            lambda g: g["in_service"] == 2
            and all(i["health"] == "healthy" for i in g["instances"]))(f.get("/v1/groups/web")))
        f.cli("scale", "web", "3")
        wait_for("3 instances in service", 60, lambda: f.get("/v1/groups/web")["in_service"] == 3)
        sent = send_requests(f, 150)
        check("the listener answered the burst", sent >= 140, f"{sent} of 150")
        wait_for("request_count and target_response_time in the metrics store", 20, lambda: (
            sum(d["value"] for d in f.get(
                "/v1/metrics/request_count?scope=load-balancer/front&statistic=sum&since=5m"
            )["datapoints"]) >= 140
            and f.get("/v1/metrics/target_response_time?scope=target-group/web"
                      "&statistic=p99&since=5m")["datapoints"]))

        status = f.cli("status", "--json")
        group = next(g for g in status["groups"] if g["name"] == "web")
        activities = f.cli("activities", "web", "--json")
        url = f.admin + "/"
        dom = Dom(dump_dom(url))
        screenshot(url, OUT / "dashboard.png")

        body = dom.text()
        section = dom.one("section", data_group="web")
        check("the group has its section", section["tag"] == "section" and "web" in section["text"],
              section)
        for zone in group["zones"]:
            check(f"zone {zone} has a column", dom.find("div", data_zone=zone), zone)
        for i in group["instances"]:
            card = dom.one("div", data_instance=i["id"])
            check(f"instance {i['id']} is shown in {i['zone']}",
                  card["attrs"].get("data-zone") == i["zone"] and i["id"] in card["text"]
                  and str(i["pid"]) in card["text"] and i["health"] in card["text"], card)
        check("the capacity numbers are the API's",
              f"desired {group['desired_capacity']} · in service {group['in_service']}"
              in section["text"], section["text"][:300])
        newest = activities[0]
        check("the newest activity's cause is in the feed",
              newest["cause"] in body and newest["description"] in body, newest)
        check("the operator's scale is in the feed", any(
            a["cause"].startswith("an operator set desired capacity from 2 to 3")
            and a["cause"] in body for a in activities), [a["cause"] for a in activities])
        listener = status["listeners"][0]["bind"]
        check("the header names the listener", listener in dom.one(id="listeners")["text"],
              listener)
        check("the cluster name is shown as text",
              dom.one(id="cluster-name")["text"] == CLUSTER_NAME, dom.one(id="cluster-name"))
        name_at = dom.elements.index(dom.one(id="cluster-name"))
        check("markup in names made no element",
              not dom.find("img") and not [e for e in dom.elements if name_at in e["parents"]],
              dom.find("img"))
        check("the page title is the cluster's (no injected handler ran)",
              dom.one("title")["text"] == CLUSTER_NAME + " · Flotilla", dom.one("title"))
        for chart in ("requests-chart", "latency-chart", "capacity-web", "cost-web"):
            svg = dom.one("svg", id=chart)
            points = int(svg["attrs"].get("data-points", "0"))
            paths = [e for e in dom.find("path")
                     if dom.elements.index(svg) in e["parents"] and e["attrs"].get("d")]
            check(f"chart {chart} has data", svg["tag"] == "svg" and points > 0 and paths,
                  svg["attrs"])
        check("the page says it is live", dom.one(id="status")["text"].startswith("live"),
              dom.one(id="status"))
        check("no token prompt on a loopback bind", "hidden" in dom.one("form", id="auth")["attrs"])
        shot = OUT / "dashboard.png"
        check("a screenshot was taken", shot.exists() and shot.stat().st_size > 20_000,
              shot)

        # --- non-loopback admin API: the bearer token -------------------------------------
        t = Flotilla(work, "token", "0.0.0.0", token=TOKEN)
        started.append(t)
        wait_for("the token-protected group in service", 60,
                 lambda: t.get("/v1/groups/web")["in_service"] == 2)
        anonymous = Dom(dump_dom(t.admin + "/"))
        screenshot(t.admin + "/", OUT / "dashboard-token-prompt.png")
        check("without a token the page asks for it",
              "hidden" not in anonymous.one("form", id="auth")["attrs"]
              and "hidden" in anonymous.one(id="content")["attrs"]
              and "bearer token" in anonymous.one(id="status")["text"],
              anonymous.one(id="status"))
        check("without a token the page shows no instance",
              not [e for e in anonymous.elements if "data-instance" in e["attrs"]])
        wrong = Dom(dump_dom(t.admin + "/#token=wrong"))
        check("a wrong token is refused", "refused" in wrong.one(id="auth-message")["text"],
              wrong.one(id="auth-message"))
        with_token = Dom(dump_dom(t.admin + f"/#token={TOKEN}"))
        ids = [i["id"] for i in t.get("/v1/groups/web")["instances"]]
        check("with the token the page shows the instances",
              all(with_token.find("div", data_instance=i) for i in ids)
              and "hidden" in with_token.one("form", id="auth")["attrs"], ids)
    except Exception:
        for f in started:
            print(f"--- {f.dir.name} flotilla log ---\n{f.tail()}")
        raise
    finally:
        for f in started:
            f.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"screenshots: {OUT / 'dashboard.png'}, {OUT / 'dashboard-token-prompt.png'}")
    print(f"dashboard: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
