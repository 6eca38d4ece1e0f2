#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (filters, transforms, diffs, signature verification)
# for a bounded time each: `scripts/fuzz.sh [seconds per target, default 60] [target…]`.
# Not part of scripts/test.sh: fuzzing wants time and cores that CI's budget does not have.
#
# Works on the stable toolchain: cargo-fuzz's default AddressSanitizer build needs the
# nightly-only `-Zsanitizer`, so targets are built without a sanitizer (`-s none`), which
# keeps libFuzzer's coverage guidance, debug assertions and overflow checks; Herald's own
# crates forbid `unsafe`. FUZZ_SANITIZER=address builds with ASan on stable by setting
# RUSTC_BOOTSTRAP=1 (the usual workaround; delete fuzz/target/.rustc_info.json if a build
# without it ran first, as cargo caches the failed probe).
#
# New inputs go to fuzz/corpus/<target> (git-ignored), starting from fuzz/seeds/<target>; a
# crash is saved in fuzz/artifacts/<target>/ and the script stops with its path.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(filter transform diff signature)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != "none" ]; then
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s (sanitizer: $sanitizer)"
  mkdir -p "corpus/$target"
  dict=()
  if [ -f "dicts/$target.dict" ]; then
    dict=("-dict=dicts/$target.dict")
  fi
  # -timeout: an input that takes over 10 s is reported as a hang (a slow filter is a
  # denial of service on the API); -rss_limit_mb bounds memory the same way.
  cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}"
done
