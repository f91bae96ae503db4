#!/usr/bin/env bash
# Dev server: dependencies, engine + registry, build, the local busybox image, then Berth in the foreground.
# Arguments go to `berth serve` (`bash scripts/serve.sh --listen 127.0.0.1:5051`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ -d node_modules ] || npm ci
bash scripts/engine-up.sh
npm run build
# The image the README's examples launch (127.0.0.1:5000/berth-test/busybox:1), built locally.
node scripts/test-images.mjs
exec node --max-semi-space-size=8 dist/src/main.js serve "$@"
