#!/usr/bin/env bash
# CI: builds the cargo-fuzz targets of fuzz/ and runs each for FUZZ_SECONDS (default 15) from
# its seed corpus; any crash, panic, timeout or out-of-memory fails the run (libFuzzer exits
# non-zero and keeps the input under fuzz/artifacts/<target>/).
#
#   .ci/fuzz.sh                                           # the CI run: 15 s per target
#   FUZZ_SECONDS=600 FUZZ_PROFILE=release .ci/fuzz.sh     # the long run: 10 minutes per target
#   .ci/fuzz.sh openai_stream gemini_stream               # some targets only
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. Targets are
# built without a sanitizer (our crates forbid unsafe code; FUZZ_SANITIZER=address to add
# ASan). What each run finds beyond the seeds is kept in fuzz/target/corpus/<target> (not
# committed) and used again by the next run. FUZZ_PROFILE=dev (the default) builds unoptimised:
# about 4 minutes cold on 2 cores, fast enough for CI, and still thousands of inputs a second;
# release (the long run's) is about 25 minutes cold and several times faster per input.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-15}"
sanitizer="${FUZZ_SANITIZER:-none}"
profile="${FUZZ_PROFILE:-dev}"
case "$profile" in
  dev) build=(-s "$sanitizer" --dev) ;;
  release) build=(-s "$sanitizer") ;;
  *) echo "FUZZ_PROFILE must be dev or release, not '$profile'" >&2; exit 2 ;;
esac
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
echo "== building the fuzz targets (profile: $profile, sanitizer: $sanitizer)"
cargo fuzz build "${build[@]}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# The words each target's inputs are made of (libFuzzer splices them in): fuzz/dict/*.dict.
dictionaries() {
  case "$1" in
    markdown_frontmatter) echo yaml numbers ;;
    workspace_files | workspace_yaml) echo yaml workspace numbers ;;
    gateway_config) echo yaml config numbers ;;
    *_stream | provider_json) echo sse json numbers ;;
    *) echo json numbers ;;
  esac
}

failed=()
for target in "${targets[@]}"; do
  work="target/corpus/$target"
  mkdir -p "$work" "artifacts/$target"
  dict="target/$target.dict"
  for name in $(dictionaries "$target"); do cat "dict/$name.dict"; done >"$dict"
  echo "== $target: ${seconds}s"
  # The first corpus folder is where new inputs go; the seeds (second) stay as committed.
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: memory a bad input makes us take.
  if ! cargo fuzz run "${build[@]}" "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -dict="$dict" \
    -use_value_profile=1 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FUZZ: crashes in ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "FUZZ: ${#targets[@]} targets, ${seconds}s each, no crash"
