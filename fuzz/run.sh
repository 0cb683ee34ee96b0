#!/usr/bin/env bash
# Fuzzes each target for SECONDS (default 20) from generated seeds. Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`); stable Rust accepts its nightly flags with RUSTC_BOOTSTRAP=1.
# Crashes land in fuzz/artifacts/<target>/; replay them with `cargo fuzz run <target> FILE`, and
# keep a minimized copy in fuzz/regressions/<target>/, which `cargo test` replays.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(unpack api_request)
export RUSTC_BOOTSTRAP=1
cargo run --quiet --release --bin seeds -- corpus
for target in "${targets[@]}"; do
  # -s none: the targets are safe Rust, where ASan adds cost and finds nothing the panics don't.
  cargo fuzz run -s none "$target" corpus/"$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1
done
