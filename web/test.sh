#!/usr/bin/env bash
# End-to-end check of the browser page: builds recur for wasm32 (WebGPU), trains a small
# checkpoint natively, serves web/ on 127.0.0.1 and drives the page in headless Chromium,
# which runs WebGPU on its software adapter (SwiftShader) on machines without a GPU.
# Needs: chromium (Debian package), node + npm, and network access to crates.io/npm once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"
WB=0.2.130
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB"; then
  cargo install wasm-bindgen-cli --version "$WB"
fi
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --release --target wasm32-unknown-unknown --target-dir "$root/target"
wasm-bindgen --target web --out-dir pkg "$root/target/wasm32-unknown-unknown/release/recur_web.wasm"

# A small model, trained here (a few seconds on lavapipe).
(cd "$root" && cargo build --release --bin recur)
"$root/target/release/recur" train --steps 30 --hidden 32 --layers 1 --seq-len 16 --batch 8 \
  --checkpoint "$here/demo.ckpt" >/dev/null

[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --silent
port=$((20000 + RANDOM % 20000))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done
# The same sample natively (lavapipe): the page must produce the same text on WebGPU.
"$root/target/release/recur" generate --checkpoint "$here/demo.ckpt" --prompt "fn " --length 200 \
  --temperature 0.8 --seed 1 2>/dev/null >"$here/expected.txt"
node check.mjs "http://127.0.0.1:$port/index.html" 200 "fn " "$here/expected.txt"
