#!/usr/bin/env bash
# End-to-end check of the demo page: builds the wasm (release), trains the same small model
# natively with recur (lavapipe) and in headless Chromium (WebGPU on SwiftShader on machines
# without a GPU), and checks in check.mjs: the first step's loss agrees within 1e-5, the loss
# falls, the page's checkpoint is the file recur generate reads (same sample natively and in
# the page), a native checkpoint loads in the page and keeps training (its next loss agrees
# too), the page without WebGPU says so, no console error, a screenshot that is not blank, and
# the gradient-flow panel (T finite positive norms per layer from Session.gradient_flow, drawn).
# Output (screenshot, checkpoints, metrics) goes to $WEB_TEST_OUT, by default
# <cargo target folder>/web-test. Needs: chromium, node + npm, python3, and network access to
# crates.io/npm once. CARGO_TARGET_DIR is honoured.
set -euo pipefail
# Mesa complains on every start without a runtime dir; give it one (as .ci/run does).
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/recur-xdg}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=$(bash "$here/build.sh" | tail -n 1)
out=${WEB_TEST_OUT:-$target/web-test}
mkdir -p "$out"
(cd "$root" && cargo build --release --bin recur)
recur="$target/release/recur"

# The sizes both sides train: the built-in text (recur's sources), seed 0, Adam 0.004, clip 1.
sizes=(--cell lstm --hidden 32 --layers 1 --seq-len 16 --batch 8 --lr 0.004 --seed 0)
steps=30
more=5
echo "== native: $steps steps, then $more more from its checkpoint"
"$recur" train "${sizes[@]}" --steps "$steps" --checkpoint "$out/native.safetensors" \
  --metrics "$out/native.csv" --sample-every 0 --sample-len 1 | grep -E "^steps|^final"
"$recur" train --resume "$out/native.safetensors" --steps "$more" \
  --checkpoint "$out/native-resumed.safetensors" --metrics "$out/native-resumed.csv" \
  --sample-every 0 --sample-len 1 | grep -E "^steps"
# The sample the page must reproduce from the native checkpoint (the check before training).
"$recur" generate --checkpoint "$out/native.safetensors" --prompt "fn " --length 200 \
  --temperature 0.8 --seed 1 2>/dev/null >"$out/native-sample.txt"

[ -d "$here/node_modules/playwright-core" ] || (cd "$here" && npm install --no-audit --no-fund --silent)
port=$((20000 + RANDOM % 20000))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done
url="http://127.0.0.1:$port/index.html?cell=lstm&hidden=32&layers=1&seq=16&batch=8&lr=0.004&seed=0"
(cd "$here" && node check.mjs "$url" "$steps" "$more" "$out" "$recur")
