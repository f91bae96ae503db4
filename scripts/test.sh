#!/usr/bin/env bash
# `npm test`: dependencies, engine + registry, build, then one mocha run over unit then integration
# tests. Extra arguments go to mocha (`npm test -- --grep pull`). The reporter (see .mocharc.json)
# ends the output with a plain `N passed, N failed` line that CI reads.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ -d node_modules ] || npm ci
bash scripts/engine-up.sh
npm run build

# Globs are quoted so mocha expands them (bash has no globstar here); unit tests run first.
exec node_modules/.bin/mocha --exit \
  'dist/test/unit/**/*.test.js' \
  'dist/test/integration/**/*.test.js' \
  "$@"
