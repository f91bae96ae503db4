// Prints the README's field table (every field a launch carries: honoured, refused or
// informational, and what Berth does with it) from src/containerizer/field-support.ts, so the
// README never drifts from what the launch check enforces. Runs after the build (it imports dist/):
//   node scripts/field-table.mjs > /tmp/field-table.md
import { fieldSupportMarkdown } from "../dist/src/containerizer/field-support.js";

console.log(fieldSupportMarkdown());
