#!/usr/bin/env bash
# Every benchmark in BENCHMARKS.md, with its baselines, in one run. Needs hyperfine
# (apt-get install hyperfine) and python3. Inputs are generated; nothing is downloaded.
#   bash bench/run.sh [WORKDIR]      (default /dev/shm/buildd-bench: tmpfs keeps disk noise out)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/dev/shm/buildd-bench}
rm -rf "$work" && mkdir -p "$work"

cargo build --release -p buildd -p buildd-runtime --examples
cargo build --release --target wasm32-wasip2 --target-dir target/wasm-buildpacks -p buildd-buildpack-hostile
bin=target/release/buildd
wasm=target/wasm-buildpacks/wasm32-wasip2/release
slugbench=target/release/examples/slugbench

echo "== buildd run (warm component cache)"
hyperfine -N -w 2 -r 20 "env BUILDD_COMPONENT_CACHE=$work/cc $bin run examples/static-site -o $work/s.tgz"
echo "== buildd run (cold: empty component cache)"
hyperfine -r 5 --prepare "rm -rf $work/cold" "BUILDD_COMPONENT_CACHE=$work/cold $bin run examples/static-site -o $work/c.tgz"

echo "== warm phase cost"
target/release/examples/phasebench "$wasm/buildd_buildpack_static.wasm" 1000

echo "== slug packing vs tar | gzip -6 (the tree: ~215 MB, 20,000 files)"
python3 bench/gen-tree.py "$work/app" 200 20000
(cd "$work" && hyperfine -w 1 -r 5 \
  -n buildd "$OLDPWD/$slugbench pack app $work/buildd.tgz" \
  -n "tar|gzip -6" "tar --sort=name --mtime=@315532801 --owner=0 --group=0 --numeric-owner -cf - app | gzip -6 > $work/gnu.tgz")
ls -l "$work/buildd.tgz" "$work/gnu.tgz"

echo "== source unpacking vs tar xzf"
hyperfine -w 1 -r 5 --prepare "rm -rf $work/u1 $work/u2; mkdir -p $work/u2" \
  -n buildd "$slugbench unpack $work/gnu.tgz $work/u1" \
  -n "tar xzf" "tar xzf $work/gnu.tgz -C $work/u2"

echo "== API latency and throughput"
python3 bench/api_bench.py "$bin" 200

echo "== 100 concurrent builds, output latency"
python3 bench/load_bench.py "$bin" "$wasm/buildd_buildpack_hostile.wasm" 100

echo "== scale-out: builds/s on 1 and 3 nodes (PostgreSQL on 127.0.0.1:5432, moto_server for S3)"
python3 bench/scale_bench.py "$bin" 120

echo "== Node.js buildpack vs npm ci (fills /tmp/npm-mirror from the npm registry on first use)"
bash bench/node_bench.sh "$work/node"
