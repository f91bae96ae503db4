// The status page in a real headless browser (Debian's chromium driven by puppeteer-core): the page
// opens, a container launched through gRPC appears and changes state without a reload (the DOM
// follows the Server-Sent Events; no request after the page's own), a screenshot is taken, and a
// caller's text holding <script> and <img onerror> renders as text (no script runs).
//
// Container ids cannot carry '<' (Berth allows [A-Za-z0-9_.-] only, see container-id.ts), so the
// hostile text travels in a field a caller controls and the page shows: a URI, which a failed
// fetch's termination message quotes verbatim.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, mkdtemp, mkdir, rm, symlink, writeFile, copyFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import type Dockerode from "dockerode";
import * as tar from "tar";
import os from "node:os";
import path from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { ensureEngine, ensureTestImages, REGISTRY, removeImage, startThrottledRegistry, type TestImages } from "../support/engine.js";
import { parseMetrics, sampleValue } from "../harness/metrics-text.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { BerthClient } from "../harness/berth-client.js";
import { launchRequest, newId } from "../harness/launches.js";

const CHROMIUM = process.env.BERTH_CHROMIUM ?? "/usr/bin/chromium";
/** Where the README's screenshot is copied (when the folder exists). */
const NOTES_SCREENSHOT = "/tmp/notes/status-page.png";
const NOTES_PULL_SCREENSHOT = "/tmp/notes/status-page-pull.png";

/** Reads a dockerode progress stream to its end; rejects on an error line. */
function followProgress(docker: Dockerode, stream: NodeJS.ReadableStream, what: string): Promise<void> {
  return new Promise((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => {
      const failed = err ?? out.find((l) => l.error);
      if (failed) reject(new Error(`${what} failed: ${failed instanceof Error ? failed.message : failed.error}`));
      else resolve();
    }),
  );
}

/**
 * Pushes an image no engine has seen to the local registry (busybox plus `mib` MiB of random bytes
 * in a fresh layer), so a launch of it really pulls; returns `name:tag` without the registry.
 */
async function pushFreshImage(docker: Dockerode, mib: number): Promise<string> {
  const name = `berth-test/page-${process.pid}-${Date.now().toString(36)}`;
  const repo = `${REGISTRY}/${name}`;
  const root = await mkdtemp(path.join(os.tmpdir(), "berth-page-image-"));
  try {
    await mkdir(path.join(root, "bin"));
    await copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
    for (const applet of ["sh", "sleep", "true"]) await symlink("busybox", path.join(root, "bin", applet));
    await writeFile(path.join(root, "fresh.bin"), randomBytes(mib * 1024 * 1024));
    const archive = tar.create({ cwd: root, portable: true }, ["bin", "fresh.bin"]) as unknown as Readable;
    await followProgress(docker, await docker.importImage(archive, { repo, tag: "1", changes: ['CMD ["/bin/sh"]'] } as object), `import of ${repo}:1`);
    await followProgress(docker, await docker.getImage(repo).push({ tag: "1", authconfig: {} } as object), `push of ${repo}:1`);
    await removeImage(docker, `${repo}:1`);
    return `${name}:1`;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The text of a cell of a container's row on the page (or undefined while there is no row). */
function cellText(page: Page, table: "containers" | "terminations", id: string, cell: string): Promise<string | undefined> {
  return page.evaluate(
    (table, id, cell) => {
      const row = [...document.querySelectorAll<HTMLTableRowElement>(`#${table}-body tr`)].find((r) => r.dataset.id === id);
      return row?.querySelector(cell)?.textContent ?? undefined;
    },
    table,
    id,
    cell,
  );
}

describe("the live status page in headless chromium", function () {
  this.timeout(180_000);
  let images: TestImages;
  let docker: Dockerode;
  let b: CapturedBerth;
  let client: BerthClient;
  let browser: Browser;
  let dir: string;

  before(async function () {
    await access(CHROMIUM).catch(() => {
      throw new Error(`${CHROMIUM} is missing: scripts/engine-up.sh installs Debian's chromium (or set BERTH_CHROMIUM)`);
    });
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-status-page-"));
    // A file:// prefix lets a launch name a local file: the hostile URI below is one.
    await writeFile(path.join(dir, "policy.json"), JSON.stringify({ file_uri_prefixes: [dir] }));
    b = await startCapturedBerth({ listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0", policy: path.join(dir, "policy.json") });
    client = new BerthClient(b.berth.addresses.find((a) => !a.startsWith("unix://"))!);
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
  });

  after(async () => {
    await browser?.close();
    client?.raw.close();
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows a launched container appear and change state live, and renders a caller's <script> as text", async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 700 });
    // Set before the page's own script: CSP violations and any hostile script would show here.
    await page.evaluateOnNewDocument(() => {
      const w = window as unknown as { __csp: string[] };
      w.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const requests: string[] = [];
    // The browser's own favicon probe is not the page's doing.
    page.on("request", (r) => {
      const p = new URL(r.url()).pathname;
      if (p !== "/favicon.ico") requests.push(p);
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));

    const base = `http://${b.berth.http!.address}`;
    const response = await page.goto(`${base}/`);
    assert.equal(response?.status(), 200);
    await page.waitForFunction(() => document.body.dataset.ready === "true");
    // A marker that a reload would erase.
    await page.evaluate(() => ((window as unknown as { __marker: string }).__marker = "no-reload"));
    const loadRequests = requests.length;
    assert.deepEqual([...requests].sort(), ["/", "/events", "/status.css", "/status.js"]);

    // A container that runs until destroyed, with resources to show.
    const id = newId("page");
    await client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 600", cpus: 0.25, memMb: 64 }));
    await page.waitForFunction((id) => [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].some((r) => r.dataset.id === id), {}, id);
    await page.waitForFunction(
      (id) => [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelector(".state")?.textContent === "RUNNING",
      {},
      id,
    );
    assert.equal(await cellText(page, "containers", id, "td.id"), id);
    assert.equal(await cellText(page, "containers", id, "td.image"), images.busybox);
    assert.equal(await cellText(page, "containers", id, "td.resources"), "cpus 0.25, mem 64 MB");
    const stages = await page.evaluate(
      (id) =>
        [...([...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelectorAll<HTMLElement>(".stage") ?? [])].map(
          (s) => s.textContent ?? "",
        ),
      id,
    );
    assert.equal(stages.length, 4, stages.join(" | "));
    assert.match(stages[0]!, /^FETCHING \d+(\.\d+)? (ms|s)$/);
    assert.match(stages[1]!, /^PULLING \d+(\.\d+)? (ms|s)$/);
    assert.match(stages[2]!, /^MOUNTING \d+(\.\d+)? (ms|s)$/);
    assert.match(stages[3]!, /^RUNNING \d+(\.\d+)? (ms|s)$/);
    assert.match((await page.$eval("#engine", (e) => e.textContent)) ?? "", /connected/);

    // The hostile text: a URI whose failed fetch is quoted in the termination message.
    const hostile = `file://${dir}/<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`;
    const evil = newId("xss");
    const watching = client.collect([evil], (e) => e.kind.case === "termination");
    await client.launch(launchRequest(evil, { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: hostile }] } }));
    const last = (await watching).at(-1)!;
    assert.ok(last.kind.case === "termination");
    const message = last.kind.value.containerTermination!.message!;
    assert.ok(message.includes("<script>window.__xss=1</script>"), message);
    await page.waitForFunction((id) => [...document.querySelectorAll<HTMLTableRowElement>("#terminations-body tr")].some((r) => r.dataset.id === id), {}, evil);
    assert.equal(await cellText(page, "terminations", evil, "td.message"), message, "shown as text, exactly");
    assert.equal(await cellText(page, "terminations", evil, "td.reason"), "CONTAINER_LAUNCH_FAILED");

    // The README's screenshot: one container running, one launch failed with hostile text.
    const shots = await mkdtemp(path.join(os.tmpdir(), "berth-status-shot-"));
    const shot = path.join(shots, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    await access(shot);
    await mkdir(path.dirname(NOTES_SCREENSHOT), { recursive: true }).catch(() => undefined);
    await copyFile(shot, NOTES_SCREENSHOT).catch(() => undefined);
    await rm(shots, { recursive: true, force: true });
    // Destroy the running one: its row turns TERMINATED and it joins the recent terminations.
    await client.destroy(id);
    await page.waitForFunction(
      (id) => [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelector(".state")?.textContent === "TERMINATED",
      {},
      id,
    );
    await page.waitForFunction((id) => [...document.querySelectorAll<HTMLTableRowElement>("#terminations-body tr")].some((r) => r.dataset.id === id), {}, id);
    assert.match((await cellText(page, "terminations", id, "td.state")) ?? "", new RegExp(`^${TaskState[TaskState.TASK_KILLED]}`));

    const outcome = await page.evaluate(() => {
      const w = window as unknown as { __xss?: number; __marker?: string; __csp: string[] };
      return { xss: w.__xss, marker: w.__marker, csp: w.__csp, imgs: document.querySelectorAll("img").length, scripts: [...document.scripts].map((s) => s.src) };
    });
    assert.equal(outcome.xss, undefined, "no hostile script ran");
    assert.equal(outcome.imgs, 0, "no <img> was made from the message");
    assert.deepEqual(outcome.scripts, [`${base}/status.js`]);
    assert.deepEqual(outcome.csp, [], "the page itself needs nothing its CSP forbids");
    assert.equal(outcome.marker, "no-reload", "the page was never reloaded");
    assert.equal(requests.length, loadRequests, `no request after the page's own: ${requests.slice(loadRequests).join(", ")}`);
    assert.deepEqual(pageErrors, []);

    await page.close();
  });

  it("shows a pull's progress live (a bar part-way, then full), and /metrics counts the pulled bytes", async () => {
    const name = await pushFreshImage(docker, 6);
    // Throttled, the pull lasts a few seconds: the page is seen part-way.
    const throttled = await startThrottledRegistry({ bytesPerSecond: 2 * 1024 * 1024 });
    const ref = `${throttled.host}/${name}`;
    const page = await browser.newPage();
    try {
      const base = `http://${b.berth.http!.address}`;
      const before = parseMetrics((await (await fetch(`${base}/metrics`)).text()));
      await page.goto(`${base}/`);
      await page.waitForFunction(() => document.body.dataset.ready === "true");
      const id = newId("pull");
      await client.launch(launchRequest(id, { image: ref, shell: "sleep 600" }));
      // Part-way: PULLING, some bytes in, not all.
      await page.waitForFunction(
        (id) => {
          const bar = [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelector<HTMLProgressElement>("td.pull progress");
          return bar !== null && bar !== undefined && bar.value > 0 && bar.value < bar.max && bar.max > 1;
        },
        { timeout: 120_000 },
        id,
      );
      assert.equal(await cellText(page, "containers", id, ".state"), "PULLING");
      // A second picture for the README: a pull in progress.
      await page.setViewport({ width: 1400, height: 500 });
      const shots = await mkdtemp(path.join(os.tmpdir(), "berth-status-shot-"));
      await page.screenshot({ path: path.join(shots, "pull.png") });
      await copyFile(path.join(shots, "pull.png"), NOTES_PULL_SCREENSHOT).catch(() => undefined);
      await rm(shots, { recursive: true, force: true });
      const partial = (await cellText(page, "containers", id, "td.pull")) ?? "";
      // The layer is the 6 MiB of random bytes plus busybox, compressed: about 7 MiB.
      assert.match(partial, /^ [\d.]+ (B|KiB|MiB) \/ [67]\.\d MiB, 0\/1 layers$/);
      await page.waitForFunction(
        (id) => [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelector(".state")?.textContent === "RUNNING",
        { timeout: 120_000 },
        id,
      );
      const full = await page.evaluate((id) => {
        const bar = [...document.querySelectorAll<HTMLTableRowElement>("#containers-body tr")].find((r) => r.dataset.id === id)?.querySelector<HTMLProgressElement>("td.pull progress");
        return bar ? [bar.value, bar.max] : undefined;
      }, id);
      assert.ok(full && full[0] === full[1], `the bar is full once RUNNING: ${JSON.stringify(full)}`);
      const after = parseMetrics((await (await fetch(`${base}/metrics`)).text()));
      const pulled = sampleValue(after, "berth_pull_bytes_total") - sampleValue(before, "berth_pull_bytes_total");
      assert.ok(pulled >= 6 * 1024 * 1024, `pull bytes ${pulled}`);
      assert.equal(sampleValue(after, "berth_launch_stage_duration_seconds_count", { stage: "pull" }) - sampleValue(before, "berth_launch_stage_duration_seconds_count", { stage: "pull" }), 1);
      // 6 MiB at 2 MiB/s: the pull stage took seconds, and the histogram says so.
      assert.ok(sampleValue(after, "berth_launch_stage_duration_seconds_sum", { stage: "pull" }) - sampleValue(before, "berth_launch_stage_duration_seconds_sum", { stage: "pull" }) >= 1);
      await client.destroy(id);
    } finally {
      await page.close();
      await throttled.close();
      await removeImage(docker, ref).catch(() => undefined);
    }
  });

  it("a live page of a Berth with tokens shows the login form, and the page after signing in", async () => {
    const tokenFile = path.join(dir, "tokens");
    await writeFile(tokenFile, "page-token-0123456789\n", { mode: 0o600 });
    const t = await startCapturedBerth({ listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0", auth_token_file: tokenFile });
    const page = await browser.newPage();
    try {
      const base = `http://${t.berth.http!.address}`;
      const first = await page.goto(`${base}/`);
      assert.equal(first?.status(), 401);
      assert.equal(await page.$("#containers"), null, "no status without a token");
      await page.type("input[name=token]", "page-token-0123456789");
      await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      await page.waitForFunction(() => document.body.dataset.ready === "true");
      const cookies = await page.cookies();
      const session = cookies.find((c) => c.name === "berth_session");
      assert.ok(session, "a session cookie");
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
      assert.equal(await page.evaluate(() => document.cookie), "", "the cookie is not readable by scripts");
    } finally {
      await page.close();
      await t.close();
    }
  });
});
