#!/usr/bin/env python3
"""`buildd serve` under load: 100 concurrent builds (peak RSS, queueing), and output latency.

Usage: load_bench.py path/to/buildd path/to/buildd_buildpack_hostile.wasm [N]
  1. N builds (default 100) of a small Procfile app on N apps, posted at once; reports the
     queue depth seen in /metrics, the time until all succeeded, and the daemon's peak RSS
     (VmHWM from /proc).
  2. Output latency: a build whose buildpack prints ten lines 100 ms apart (its `tick` mode);
     a reader of output_stream_url records when each line arrives. With live streaming the
     arrivals keep the 100 ms rhythm; buffering would deliver lines in bursts.
"""
import http.client
import json
import sys
import time
import urllib.parse

from daemon import headers, serve_source, start_daemon

BIN, HOSTILE = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 100
server, host, token = start_daemon(BIN, "--buildpack", HOSTILE)
SOURCE = serve_source()
HEADERS = headers(token)
conn = http.client.HTTPConnection(host)


def call(method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=HEADERS)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def metric(name):
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def peak_rss_mb():
    with open(f"/proc/{server.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


apps = [f"load-{i}" for i in range(N)]
for a in apps:
    call("POST", "/apps", {"name": a})
t0 = time.perf_counter()
ids = []
for a in apps:
    status, b = call("POST", f"/apps/{a}/builds", {"source_blob": {"url": SOURCE}})
    assert status == 201, b
    ids.append((a, b["id"]))
max_depth = metric("buildd_queue_depth")
for a, bid in ids:
    while True:
        _, b = call("GET", f"/apps/{a}/builds/{bid}")
        if b["status"] != "pending":
            assert b["status"] == "succeeded", b
            break
        max_depth = max(max_depth, metric("buildd_queue_depth"))
        time.sleep(0.002)
total = time.perf_counter() - t0
print(f"{N} concurrent builds: all succeeded in {total:.2f} s; queue depth seen up to {max_depth:.0f}; "
      f"daemon peak RSS {peak_rss_mb():.0f} MB")

call("POST", "/apps", {"name": "ticker"})
call("PATCH", "/apps/ticker/config-vars", {"HOSTILE": "tick"})
status, b = call("POST", "/apps/ticker/builds", {"source_blob": {"url": SOURCE}, "buildpacks": [{"url": "test/hostile"}]})
assert status == 201, b
stream = urllib.parse.urlparse(b["output_stream_url"])
sc = http.client.HTTPConnection(stream.netloc)
sc.request("GET", stream.path)
res = sc.getresponse()
arrivals, pending = {}, b""
while True:
    chunk = res.read1(65536)
    if not chunk:
        break
    now = time.perf_counter()
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        if line.startswith(b"tick "):
            arrivals[int(line.split()[1])] = now
gaps = [(arrivals[i] - arrivals[i - 1]) * 1000 for i in range(1, 10)]
# Buffered output would arrive in bursts (gaps near 0 ms); live output keeps the 100 ms rhythm.
print(f"output: 10 lines printed 100 ms apart arrived {min(gaps):.1f}-{max(gaps):.1f} ms apart")
server.terminate()
server.wait()
