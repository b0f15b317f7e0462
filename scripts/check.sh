#!/usr/bin/env bash
# Every static check and packaging lint, in one command: `npm run check` (CI runs it before the
# tests). Needs `npm ci`; builds dist/ itself. Runs every step, prints each one's time, and exits
# non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
step() {
  local name=$1
  shift
  local start ms
  start=$(date +%s%N)
  echo "::: $name: $*"
  if "$@"; then
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "::: $name: ok ($((ms / 1000)).$((ms % 1000 / 100)) s)"
  else
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "::: $name: FAILED ($((ms / 1000)).$((ms % 1000 / 100)) s)"
    failed+=("$name")
  fi
}

step format npm run -s format:check
step build npm run -s build
# Layers run one way, no import cycles (.dependency-cruiser.cjs holds the order).
step layers npm run -s check:layers
# No file in lib/ over 400 lines without a reason in scripts/long-files.txt.
step file-size npm run -s check:size
# The main entry stays the stable API an app uses (at most 90 names); prints every entry's count.
step public-surface npm run -s check:surface
# Type-aware ESLint over lib/, sample-app/ and test/.
step lint npm run -s lint
# Unused files, exports and dependencies.
step knip npm run -s knip
# API reference; warnings (an undocumented public export, a broken link) are errors.
step docs npm run -s docs
# The tarball's file list against scripts/packed-files.txt.
step pack-files npm run -s check:pack
# The packed package.json: exports, types, bin, files.
step publint npm run -s lint:publint
# Types and resolution of every entry point from the packed tarball, for ESM and CommonJS
# consumers under node16/nodenext and bundler resolution (see lint:types in package.json).
step attw npm run -s lint:types
step publish-dry-run npm run -s check:publish

if ((${#failed[@]})); then
  echo "::: check FAILED: ${failed[*]}" >&2
  exit 1
fi
echo '::: check: all passed'
