import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import type Dockerode from "dockerode";
import {
  REGISTRY,
  TEST_LABEL,
  ensureEngine,
  ensureTestImages,
  removeImage,
  removeTestContainers,
  startThrottledRegistry,
  type TestImages,
  type ThrottledRegistry,
} from "../support/engine.js";
import { readProgress } from "../support/progress.js";

const LABELS = { [TEST_LABEL]: "support" };
const MiB = 1024 * 1024;
const BIG_IMAGE_BYTES = 64 * MiB;

/** Polls `probe` every `everyMs` until it returns a value, failing after `timeoutMs` with `what`. */
async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** Pulls `ref` to completion, failing on any in-band error line. */
async function pull(docker: Dockerode, ref: string, signal?: AbortSignal): Promise<void> {
  const stream = await docker.pull(ref, signal ? { abortSignal: signal } : {});
  await readProgress(stream, `pull of '${ref}'`);
}

describe("test support (engine, registry, images, throttled proxy)", function () {
  let docker: Dockerode;
  let images: TestImages;

  before(async function () {
    this.timeout(180_000);
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  afterEach(async function () {
    await removeTestContainers(docker, LABELS);
  });

  after(async function () {
    // The pulls below leave the image behind; other suites expect to pull it themselves.
    if (docker && images) await removeImage(docker, images.busybox);
  });

  it("engine answers /_ping and the registry serves both test images", async function () {
    const pong = await docker.ping();
    assert.equal(String(pong), "OK");
    assert.equal(images.busybox, `${REGISTRY}/berth-test/busybox:1`);
    assert.equal(images.big, `${REGISTRY}/berth-test/big:1`);
    for (const name of ["berth-test/busybox", "berth-test/big"]) {
      const res = await fetch(`http://${REGISTRY}/v2/${name}/manifests/1`, {
        headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" },
      });
      await res.body?.cancel();
      assert.equal(res.status, 200, `manifest of ${name}:1`);
    }
  });

  it("ensureTestImages is idempotent and returns the same references", async function () {
    assert.deepEqual(await ensureTestImages(docker), images);
  });

  it("a container from the pulled busybox image runs `echo hello` with network mode none and exits 0", async function () {
    await removeImage(docker, images.busybox);
    await pull(docker, images.busybox);
    const container = await docker.createContainer({
      Image: images.busybox,
      Cmd: ["echo", "hello"],
      Labels: LABELS,
      HostConfig: { NetworkMode: "none" },
    });
    await container.start();
    const exit = (await container.wait()) as { StatusCode: number };
    assert.equal(exit.StatusCode, 0);
    const logs = await container.logs({ stdout: true, stderr: true, follow: false });
    assert.match(logs.toString("latin1"), /hello/);
    const info = await container.inspect();
    assert.equal(info.HostConfig.NetworkMode, "none");
    await container.remove({ force: true });
    await assert.rejects(container.inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
  });

  it("the image has the busybox applets, /etc/passwd with nobody and CMD /bin/sh", async function () {
    await pull(docker, images.busybox);
    const image = await docker.getImage(images.busybox).inspect();
    assert.deepEqual(image.Config.Cmd, ["/bin/sh"]);
    const container = await docker.createContainer({
      Image: images.busybox,
      Cmd: ["sh", "-c", "id -u nobody && seq 3 | wc -l && ls -ld /tmp | cut -c1-10"],
      User: "65534",
      Labels: LABELS,
      HostConfig: { NetworkMode: "none" },
    });
    await container.start();
    const exit = (await container.wait()) as { StatusCode: number };
    const logs = (await container.logs({ stdout: true, stderr: true, follow: false })).toString("latin1");
    assert.equal(exit.StatusCode, 0, `container output: ${logs}`);
    assert.match(logs, /65534/);
    assert.match(logs, /drwxrwxrwt/);
  });

  describe("throttled registry proxy", function () {
    let proxy: ThrottledRegistry | undefined;

    afterEach(async function () {
      await proxy?.close();
      proxy = undefined;
    });

    it("passes a complete pull through and counts the bytes it forwarded", async function () {
      proxy = await startThrottledRegistry({ bytesPerSecond: 16 * MiB });
      const ref = `${proxy.host}/berth-test/busybox:1`;
      await removeImage(docker, ref);
      try {
        await pull(docker, ref);
        const image = await docker.getImage(ref).inspect();
        assert.deepEqual(image.Config.Cmd, ["/bin/sh"]);
        assert.ok(proxy.bytesSent() > 0, "proxy forwarded no body bytes");
      } finally {
        await removeImage(docker, ref);
      }
    });

    it("an aborted pull of the big image stops the transfer through the proxy", async function () {
      this.timeout(120_000);
      const rate = 2 * MiB;
      proxy = await startThrottledRegistry({ bytesPerSecond: rate });
      const throttled = proxy;
      const ref = `${proxy.host}/berth-test/big:1`;
      // The layer must not be in the engine already, or the pull would skip the blob transfer.
      await removeImage(docker, ref);
      await removeImage(docker, images.big);

      const controller = new AbortController();
      const pulling = pull(docker, ref, controller.signal);
      const outcome = pulling.then(
        () => ({ error: undefined as unknown }),
        (error: unknown) => ({ error }),
      );
      try {
        // Enough has flowed that the blob transfer is certainly under way.
        await waitFor("1 MiB to flow through the proxy", () => (throttled.bytesSent() > MiB ? true : undefined), 30_000);
        controller.abort();

        const { error } = await outcome;
        assert.ok(error !== undefined, "pull resolved although it was aborted");
        assert.ok(controller.signal.aborted);
        const code = (error as { code?: string }).code;
        assert.ok(
          code === "ABORT_ERR" || code === "ECONNRESET" || (error as Error).name === "AbortError",
          `unexpected abort error: code ${code}, message '${(error as Error).message}'`,
        );

        // The engine drops its registry request: the count settles (unchanged over 1 s of samples).
        let last = throttled.bytesSent();
        let stableSince = Date.now();
        const settled = await waitFor(
          "the proxy's byte count to stop growing after the abort",
          () => {
            const now = throttled.bytesSent();
            if (now !== last) {
              last = now;
              stableSince = Date.now();
              return undefined;
            }
            return Date.now() - stableSince >= 1000 ? now : undefined;
          },
          20_000,
          100,
        );
        assert.ok(settled < BIG_IMAGE_BYTES / 2, `transfer went on to ${settled} bytes after the abort`);
        await assert.rejects(docker.getImage(ref).inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
      } finally {
        controller.abort();
        await outcome;
        await removeImage(docker, ref);
      }
    });
  });
});
