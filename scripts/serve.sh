#!/usr/bin/env bash
# Dev server: dependencies, engine + registry, build, then Berth in the foreground.
# Arguments go to `berth serve` (`bash scripts/serve.sh --port 5051`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ -d node_modules ] || npm ci
bash scripts/engine-up.sh
npm run build
exec node dist/src/main.js serve "$@"
