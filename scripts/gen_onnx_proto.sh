#!/usr/bin/env bash
# Remakes src/onnx/proto.rs from the onnx.proto that the installed `onnx` Python package ships,
# with prost-build and protox (a protobuf compiler in Rust, so no `protoc` is needed).
# Usage: scripts/gen_onnx_proto.sh   (needs: pip install onnx; cargo)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
proto=$(python3 -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'onnx.proto'))")
version=$(python3 -c "import onnx; print(onnx.__version__)")
mkdir -p "$work/src" "$work/out"
cp "$proto" "$work/onnx.proto"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "gen-onnx-proto"
version = "0.1.0"
edition = "2021"
[dependencies]
prost-build = "0.14"
protox = "0.9"
[workspace]
TOML
cat > "$work/src/main.rs" <<'RS'
fn main() {
    let fds = protox::compile(["onnx.proto"], ["."]).expect("onnx.proto compiles");
    prost_build::Config::new()
        .out_dir("out")
        .compile_fds(fds)
        .expect("prost-build generates");
}
RS
(cd "$work" && cargo run --quiet --release)
{
  echo "// The ONNX protobuf messages (onnx.proto, package \`onnx\`, ONNX $version, Apache-2.0), as"
  echo "// prost-build 0.14 generates them; \`scripts/gen_onnx_proto.sh\` remakes this file. Decoding is"
  echo "// prost's: nothing here is hand-written."
  cat "$work/out/onnx.rs"
} > "$root/src/onnx/proto.rs"
echo "wrote src/onnx/proto.rs (ONNX $version)"
