#!/usr/bin/env bash
# Builds the demo (release wasm, size printed) and serves web/ on http://127.0.0.1:${PORT:-8000}/.
# Open that address in a browser with WebGPU (the page says how to enable it if it is off).
# Needs: a Rust toolchain with the wasm32-unknown-unknown target, python3 (the static server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/build.sh" >/dev/null
port=${PORT:-8000}
echo "serving the demo on http://127.0.0.1:$port/ (Ctrl-C stops)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here"
