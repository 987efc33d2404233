#!/usr/bin/env bash
# Builds the page's WebAssembly in release mode into web/pkg (wasm-bindgen's JS glue beside it)
# and prints its size. Cargo's target folder is asked of cargo, so CARGO_TARGET_DIR (or a
# build.target-dir in a cargo config) is honoured. Prints the target folder on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
WB=0.2.130 # must equal the wasm-bindgen crate in web/Cargo.toml
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB"; then
  cargo install wasm-bindgen-cli --version "$WB" --locked >&2
fi
if command -v rustup >/dev/null; then rustup target add wasm32-unknown-unknown >/dev/null 2>&1; fi
(cd "$here" && cargo build --release --target wasm32-unknown-unknown --target-dir "$target" >&2)
wasm-bindgen --target web --out-dir "$here/pkg" "$target/wasm32-unknown-unknown/release/recur_web.wasm"
wasm="$here/pkg/recur_web_bg.wasm"
bytes=$(wc -c <"$wasm")
gz=$(gzip -9c "$wasm" | wc -c)
echo "wasm (release): web/pkg/recur_web_bg.wasm, $((bytes / 1024)) KiB ($((gz / 1024)) KiB gzipped)" >&2
echo "$target"
