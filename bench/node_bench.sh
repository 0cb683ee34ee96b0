#!/usr/bin/env bash
# The Node.js buildpack on a ~300-package lockfile against `npm ci --ignore-scripts` on the same
# lockfile from the same local registry, cold (empty caches) and warm.
#   bash bench/node_bench.sh [WORKDIR]     (default /dev/shm/buildd-node-bench)
# Needs hyperfine, python3, npm, and the npm registry once (to fill the mirror; afterwards offline).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/dev/shm/buildd-node-bench}
mirror=${NPM_MIRROR:-/tmp/npm-mirror}
port=${PORT:-4873}
rm -rf "$work" && mkdir -p "$work/npm" "$work/tmp"
# Build scratch space on the same tmpfs as npm's install dir: a fair comparison.
export TMPDIR=$work/tmp
bin=$PWD/target/release/buildd
[ -x "$bin" ] || cargo build --release -p buildd

python3 bench/npm-mirror.py bench/node-app/package-lock.json "$mirror"
python3 bench/npm-registry.py "$mirror" "$port" > "$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid' EXIT
sleep 1
reg="http://127.0.0.1:$port/"
cp bench/node-app/package.json bench/node-app/package-lock.json "$work/npm/"

build="$bin run bench/node-app --allow-host 127.0.0.1:$port -e NPM_CONFIG_REGISTRY=$reg \
  --download-cache $work/dl --cache-dir $work/cache -o $work/slug.tgz"
npmci="npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --registry $reg \
  --cache $work/npmcache --prefix $work/npm"
# What a slug needs beyond node_modules: the app packed (npm ci does not install node itself).
pack="tar --sort=name --mtime=@315532801 --owner=0 --group=0 --numeric-owner -C $work -cf - npm | gzip -6 > $work/npm.tgz"

echo "== cold: empty download cache, app cache and npm cache"
hyperfine -r 5 \
  -n "buildd run (node + 294 packages + slug)" --prepare "rm -rf $work/dl $work/cache" "$build" \
  -n "npm ci --ignore-scripts" --prepare "rm -rf $work/npm/node_modules $work/npmcache" "$npmci"
echo "== warm: caches kept"
hyperfine -w 1 -r 10 \
  -n "buildd run (node + 294 packages + slug)" --prepare "true" "$build" \
  -n "npm ci --ignore-scripts --prefer-offline" --prepare "rm -rf $work/npm/node_modules" "$npmci --prefer-offline" \
  -n "npm ci --prefer-offline + tar|gzip -6" --prepare "rm -rf $work/npm/node_modules" "$npmci --prefer-offline && $pack"
ls -l "$work/slug.tgz"
du -sh "$work/npm/node_modules"
