#!/usr/bin/env python3
"""Scale-out: builds/s with 1 and 3 `buildd serve` nodes on one PostgreSQL and one S3-compatible
store (moto_server), all on this machine, and the queue's claim latency; the baseline is the
default single node (SQLite and files in its data dir), run the same way in the same session.

Usage: scale_bench.py path/to/buildd [BUILDS] [HOSTILE_WASM] [POSTGRES_SERVER_URL]
  For the default node, then 1 and 3 nodes on PostgreSQL + S3 (each `--concurrency 2`, a fresh
  database and bucket each time):
  BUILDS builds (default 120) of a small Procfile app on BUILDS apps, posted round-robin through
  the nodes' APIs; reports the time until all succeeded and builds/s. Then, on the idle
  cluster, 30 builds one after another: the pickup latency (POST answered -> the build's first
  output line, written right after a node claimed it) and the claim query time from /metrics.
  With HOSTILE_WASM (the test buildpack), also 24 one-second builds (its `tick` mode: ten lines
  100 ms apart, little CPU), the kind of build that waits on the network: there each node adds
  slots, which the CPU-bound small builds above cannot show on a 2-core machine.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from daemon import headers, serve_source

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 120
HOSTILE = sys.argv[3] if len(sys.argv) > 3 else None
PG = sys.argv[4] if len(sys.argv) > 4 else os.environ.get("BUILDD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/")
SOURCE = serve_source()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def psql(db, sql):
    return subprocess.check_output(["psql", PG + db, "-qAt", "-c", sql]).decode().strip()


port = free_port()
moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
endpoint = f"http://127.0.0.1:{port}"
for _ in range(200):
    try:
        urllib.request.urlopen(endpoint)
        break
    except Exception:
        time.sleep(0.1)
EXTRA = ["--buildpack", HOSTILE] if HOSTILE else []
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
           AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")


def cluster(nodes, tag, blob_store=None):
    if nodes == 0:  # the default: SQLite and files in the data dir
        tmp = tempfile.mkdtemp()
        token = subprocess.check_output([BIN, "tokens", "create", "--data-dir", tmp]).decode().strip()
        p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", tmp, "--concurrency", "2", *EXTRA],
                             stdout=subprocess.PIPE)
        host = urllib.parse.urlparse(p.stdout.readline().decode().split()[-1]).netloc
        return None, [p], [http.client.HTTPConnection(host)], headers(token)
    db = f"buildd_bench_{tag}_{os.getpid()}"
    psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    psql("postgres", f"CREATE DATABASE {db}")
    bucket = f"bench-{tag}-{os.getpid()}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"))
    env = dict(ENV, BUILDD_DATABASE=PG + db, BUILDD_BLOB_STORE=blob_store or f"s3://{bucket}/buildd")
    tmp = tempfile.mkdtemp()
    token = subprocess.check_output([BIN, "tokens", "create", "--data-dir", tmp + "/t"], env=env).decode().strip()
    procs, hosts = [], []
    for i in range(nodes):
        p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{tmp}/n{i}",
                              "--node-name", f"n{i}", "--concurrency", "2", *EXTRA],
                             stdout=subprocess.PIPE, env=env)
        hosts.append(urllib.parse.urlparse(p.stdout.readline().decode().split()[-1]).netloc)
        procs.append(p)
    return db, procs, [http.client.HTTPConnection(h) for h in hosts], headers(token)


def call(conn, hdrs, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdrs)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def metric(conn, name):
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def builds(conn, status):
    return metric(conn, f'buildd_builds{{status="{status}"}}')


results = {}
CONFIGS = [
    (0, None, "default node (SQLite + files)"),
    (1, "file://" + tempfile.mkdtemp(), "1 node on PostgreSQL + files (the S3 share, by difference)"),
    (1, None, "1 node on PostgreSQL + S3"),
    (3, None, "3 nodes on PostgreSQL + S3"),
]
for nodes, store, label in CONFIGS:
    db, procs, conns, hdrs = cluster(nodes, f"n{nodes}{'f' if store else ''}", store)
    nodes = max(nodes, 1)
    apps = [f"scale-{i}" for i in range(N)]
    for i, a in enumerate(apps):
        call(conns[i % nodes], hdrs, "POST", "/apps", {"name": a})
    t0 = time.perf_counter()
    for i, a in enumerate(apps):
        status, b = call(conns[i % nodes], hdrs, "POST", f"/apps/{a}/builds", {"source_blob": {"url": SOURCE}})
        assert status == 201, b
    while builds(conns[0], "pending") > 0:
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    failed = builds(conns[0], "failed")
    print(f"{label}: {N} builds in {elapsed:.2f} s = {N / elapsed:.1f} builds/s, {failed:.0f} failed")

    # Pickup latency on an idle cluster: one build at a time, created through the last node.
    lat = []
    conn = conns[-1]
    for i in range(30):
        app = f"idle-{i}"
        call(conn, hdrs, "POST", "/apps", {"name": app})
        t = time.perf_counter()
        status, b = call(conn, hdrs, "POST", f"/apps/{app}/builds", {"source_blob": {"url": SOURCE}})
        t_answered = time.perf_counter()
        # The worker's first line ("Building on node ...") is written right after the claim.
        while True:
            _, r = call(conn, hdrs, "GET", f"/apps/{app}/builds/{b['id']}/result")
            if r["lines"]:
                break
        lat.append((time.perf_counter() - t_answered) * 1000)
        while call(conn, hdrs, "GET", f"/apps/{app}/builds/{b['id']}")[1]["status"] == "pending":
            time.sleep(0.02)
    claims = sum(metric(c, "buildd_claim_seconds_count") for c in conns)
    claim_s = sum(metric(c, "buildd_claim_seconds_sum") for c in conns)
    lat.sort()
    print(f"  pickup (POST answered -> first output line stored; 30 builds on the idle cluster): "
          f"p50 {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms")
    print(f"  claim query: {claims:.0f} claims, mean {1000 * claim_s / max(claims, 1):.2f} ms")
    if HOSTILE:
        ticks = [f"tick-{i}" for i in range(24)]
        for i, app in enumerate(ticks):
            call(conns[i % nodes], hdrs, "POST", "/apps", {"name": app})
            call(conns[i % nodes], hdrs, "PATCH", f"/apps/{app}/config-vars", {"HOSTILE": "tick"})
        done_before = builds(conns[0], "succeeded")
        t0 = time.perf_counter()
        for i, app in enumerate(ticks):
            status, b = call(conns[i % nodes], hdrs, "POST", f"/apps/{app}/builds",
                             {"source_blob": {"url": SOURCE}, "buildpacks": [{"url": "test/hostile"}]})
            assert status == 201, b
        while builds(conns[0], "pending") > 0:
            time.sleep(0.02)
        elapsed_t = time.perf_counter() - t0
        ok = builds(conns[0], "succeeded") - done_before
        print(f"  24 one-second builds: {elapsed_t:.2f} s = {24 / elapsed_t:.2f} builds/s ({ok:.0f} succeeded)")
    results[label] = N / elapsed
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    if db:
        psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

moto.kill()
r = list(results.values())
print(f"3 nodes / 1 node throughput: {r[3] / r[2]:.2f}x (2 cores in all: the nodes share them); "
      f"1 node on PostgreSQL + S3 / the default node: {r[2] / r[0]:.2f}x")
