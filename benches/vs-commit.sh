#!/usr/bin/env bash
# Same-sitting speed comparison of the working tree against an earlier commit, on this machine:
#   bash benches/vs-commit.sh [COMMIT] [recur bench args...]
# COMMIT defaults to c48fc2c. Builds it once into /tmp/recur-base-COMMIT (a git worktree, kept
# for later calls) and builds the working tree, then runs `recur bench --suite cpu --json
# --reps 3` (or the args given; --json is added when missing) with the baseline and the current
# build back to back, and prints per shape both times, the speed-up (COMMIT ms / now ms) and
# its geometric mean with `recur bench --compare now.jsonl --against COMMIT.jsonl`.
# Needs bash, git and cargo. The JSON lines and the logs are kept in a temporary folder.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
commit=${1:-c48fc2c}; shift || true
git rev-parse --verify -q "$commit^{commit}" >/dev/null || { echo "vs-commit: no commit $commit" >&2; exit 2; }
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--suite cpu --json --reps 3)
case " ${args[*]} " in *" --json "*) ;; *) args+=(--json) ;; esac
name=${commit//[^A-Za-z0-9._-]/-}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/recur-xdg}; mkdir -p -m 700 "$XDG_RUNTIME_DIR"
base=/tmp/recur-base-$name
if [ ! -x "$base/target/release/recur" ]; then
  rm -rf "$base"; git worktree prune
  git worktree add -f --detach "$base" "$commit" >/dev/null
  (cd "$base" && CARGO_TARGET_DIR="$base/target" cargo build --release -q)
fi
now_target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q
out=$(mktemp -d)
run() { # run BINARY NAME: the suite's JSON lines appended to $out/NAME.jsonl, stderr to $out/NAME.err
  if ! "$1" bench "${args[@]}" >> "$out/$2.jsonl" 2> "$out/$2.err"; then
    echo "vs-commit: $1 bench ${args[*]} failed:" >&2; tail -5 "$out/$2.err" >&2; exit 1
  fi
}
# Machines drift in speed over minutes: alternate the two builds ROUNDS times (default 3) and
# compare per-shape medians (`recur bench --compare` takes the median of a shape's lines).
for _ in $(seq "${ROUNDS:-3}"); do
  run "$base/target/release/recur" "$name"
  run "$now_target/release/recur" now
done
"$now_target/release/recur" bench --compare "$out/now.jsonl" --against "$out/$name.jsonl"
echo "(JSON lines and logs kept in $out)"
