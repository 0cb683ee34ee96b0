#!/usr/bin/env python3
"""POST-to-succeeded latency and throughput of `buildd serve`, measured over loopback.

Starts the given buildd binary on a fresh data dir, serves a small Procfile app tarball from a
local HTTP server, then:
  1. latency: N sequential builds of one app; each is timed from sending POST /builds until its
     output stream ends (the stream ends only once the status is final), and the build is then
     checked to have succeeded;
  2. throughput: N builds spread over 10 apps, posted as fast as possible, timed until all
     have succeeded.
Usage: api_bench.py path/to/buildd [N]
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

from daemon import headers, serve_source, start_daemon

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
server, host, token = start_daemon(BIN)
SOURCE = serve_source()
HEADERS = headers(token)


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=HEADERS)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def build(conn, app):
    t0 = time.perf_counter()
    status, b = call(conn, "POST", f"/apps/{app}/builds", {"source_blob": {"url": SOURCE}})
    assert status == 201, b
    stream = urllib.parse.urlparse(b["output_stream_url"])
    sc = http.client.HTTPConnection(stream.netloc)
    sc.request("GET", stream.path)
    sc.getresponse().read()
    elapsed = time.perf_counter() - t0
    sc.close()
    status, done = call(conn, "GET", f"/apps/{app}/builds/{b['id']}")
    assert done["status"] == "succeeded", done
    return elapsed


conn = http.client.HTTPConnection(host)
call(conn, "POST", "/apps", {"name": "bench-app"})
for _ in range(5):
    build(conn, "bench-app")  # warm up
lat = sorted(build(conn, "bench-app") for _ in range(N))
p50 = statistics.median(lat) * 1000
p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)] * 1000
print(f"latency over {N} sequential builds: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
      f"min {lat[0]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms")

apps = [f"bench-par-{i}" for i in range(10)]
for a in apps:
    call(conn, "POST", "/apps", {"name": a})
t0 = time.perf_counter()
ids = []
for i in range(N):
    app = apps[i % len(apps)]
    status, b = call(conn, "POST", f"/apps/{app}/builds", {"source_blob": {"url": SOURCE}})
    assert status == 201, b
    ids.append((app, b["id"]))
for app, bid in ids:
    while True:
        _, b = call(conn, "GET", f"/apps/{app}/builds/{bid}")
        if b["status"] != "pending":
            assert b["status"] == "succeeded", b
            break
        time.sleep(0.005)
total = time.perf_counter() - t0
print(f"throughput: {N} builds over 10 apps in {total:.2f} s = {N/total:.1f} builds/s")
server.terminate()
server.wait()
