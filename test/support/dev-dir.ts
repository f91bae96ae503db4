import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Dev dir for logs, registry storage and cached image tars (BERTH_DEV_DIR, default /var/tmp/berth-dev). */
export function devDir(): string {
  return process.env.BERTH_DEV_DIR || "/var/tmp/berth-dev";
}

/** Repository root, found by walking up from this file (works from test/support and dist/test/support). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, "scripts", "engine-up.sh"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`repo root not found: no scripts/engine-up.sh above '${fileURLToPath(import.meta.url)}'`);
}
