// Pushes the locally built test images to the registry on 127.0.0.1:5000 (once; fast when already
// there) and prints the busybox one, which the README's examples launch. Built by
// test/support/test-images.ts from busybox-static through the Engine API: no internet, no docker CLI.
// Runs after the build (it imports dist/), from scripts/serve.sh.
import { ensureEngine, ensureTestImages } from "../dist/test/support/engine.js";

try {
  const images = await ensureTestImages(await ensureEngine());
  console.log(`images: ${images.busybox} (busybox, for the README's examples) and ${images.big} in the local registry`);
} catch (err) {
  console.error(`test-images: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
