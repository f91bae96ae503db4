import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fetchUris, FetchFailed, type FetchOptions } from '../../src/fetcher/fetcher.js';
import { openLocalFile } from '../../src/fetcher/local-file.js';

// <root>/allowed is the one allowed prefix; <root>/secret lies outside it.

describe('fetcher: file URIs and local paths', function () {
  let root: string;
  let allowed: string;
  let sandbox: string;
  let secretFile: string;
  let controller: AbortController;

  beforeEach(async function () {
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-files-'));
    allowed = path.join(root, 'allowed');
    sandbox = path.join(root, 'sandbox');
    await mkdir(allowed);
    await mkdir(sandbox);
    secretFile = path.join(root, 'secret');
    await writeFile(secretFile, 'top secret');
    await writeFile(path.join(allowed, 'ok.txt'), 'fine');
    controller = new AbortController();
  });

  afterEach(async function () {
    controller.abort(new Error('test over'));
    await rm(root, { recursive: true, force: true });
  });

  const opts = (extra: Partial<FetchOptions> = {}): FetchOptions => ({ signal: controller.signal, filePrefixes: [allowed], ...extra });

  async function refused(value: string, why: RegExp, extra: Partial<FetchOptions> = {}): Promise<string> {
    let message = '';
    await assert.rejects(fetchUris([{ value, outputFile: 'out' }], sandbox, opts(extra)), (err: unknown) => {
      assert.ok(err instanceof FetchFailed, String(err));
      assert.ok(err.message.includes(`'${value}' (command_info.uris[0])`), err.message);
      assert.match(err.message, why);
      message = err.message;
      return true;
    });
    assert.deepEqual(await readdir(sandbox), []);
    return message;
  }

  it('reads a file under an allowed prefix, as a bare path and as a file:// URI', async function () {
    const p = path.join(allowed, 'ok.txt');
    await fetchUris([{ value: p }, { value: pathToFileURL(p).href, outputFile: 'again.txt' }], sandbox, opts());
    assert.equal(await readFile(path.join(sandbox, 'ok.txt'), 'utf8'), 'fine');
    assert.equal(await readFile(path.join(sandbox, 'again.txt'), 'utf8'), 'fine');
  });

  it('by default (no filePrefixes) refuses every local path, naming the rule', async function () {
    await refused(path.join(allowed, 'ok.txt'), /refused: file URIs and local paths may only read under the allowed file prefixes \(the policy's file_uri_prefixes\), and none are allowed/, {
      filePrefixes: undefined,
    });
    await refused(`file://${secretFile}`, /none are allowed/, { filePrefixes: [] });
  });

  it('refuses a path outside the prefixes, and does not say whether it exists', async function () {
    const existing = await refused(secretFile, /is not under an allowed prefix/);
    const missing = await refused(path.join(root, 'no-such-file'), /is not under an allowed prefix/);
    assert.doesNotMatch(existing + missing, /ENOENT|top secret/);
  });

  it("refuses '..' that climbs out of the prefix", async function () {
    await refused(`${allowed}/../secret`, /is not under an allowed prefix/);
    await refused(`file://${allowed}/../secret`, /is not under an allowed prefix/);
  });

  it('refuses a symlink inside the prefix pointing outside it', async function () {
    await symlink(secretFile, path.join(allowed, 'link'));
    await refused(path.join(allowed, 'link'), /\(with symlinks resolved\) is not under an allowed prefix/);
  });

  it('refuses a path under a symlinked directory inside the prefix that leads outside', async function () {
    await symlink(root, path.join(allowed, 'up'));
    await refused(path.join(allowed, 'up', 'secret'), /\(with symlinks resolved\) is not under an allowed prefix/);
  });

  it('allows a symlink that resolves inside the prefix, and a prefix that is itself a symlink', async function () {
    await symlink('ok.txt', path.join(allowed, 'alias'));
    const viaLink = path.join(root, 'prefix-link');
    await symlink(allowed, viaLink);
    await fetchUris([{ value: path.join(allowed, 'alias') }, { value: path.join(viaLink, 'ok.txt'), outputFile: 'b' }], sandbox, opts({ filePrefixes: [viaLink] }));
    assert.equal(await readFile(path.join(sandbox, 'alias'), 'utf8'), 'fine');
    assert.equal(await readFile(path.join(sandbox, 'b'), 'utf8'), 'fine');
  });

  it('a prefix is a directory boundary, not a string prefix', async function () {
    await mkdir(`${allowed}-evil`);
    await writeFile(`${allowed}-evil/x`, 'x');
    await refused(`${allowed}-evil/x`, /is not under an allowed prefix/);
  });

  it('refuses a FIFO without hanging on it', async function () {
    const fifo = path.join(allowed, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await refused(fifo, /'.*pipe' is not a regular file/);
  });

  it('refuses a directory', async function () {
    await mkdir(path.join(allowed, 'dir'));
    await refused(path.join(allowed, 'dir'), /is not a regular file|EISDIR/);
  });

  it('reports a missing file inside the prefix as missing', async function () {
    await refused(path.join(allowed, 'gone.txt'), /ENOENT/);
  });

  it('the local size counts against the per-URI and per-launch caps', async function () {
    await writeFile(path.join(allowed, 'big'), Buffer.alloc(3000));
    await refused(path.join(allowed, 'big'), /size 3000 exceeds the limit of 2999 bytes \(--fetch_max_uri_bytes\)/, { maxBytes: 2999 });
    await refused(path.join(allowed, 'big'), /combined limit of 2000 bytes/, { maxLaunchBytes: 2000 });
  });

  describe('races between the check and the open (test seam)', function () {
    it('a symlink swapped in at the last component after the check is refused (O_NOFOLLOW)', async function () {
      const p = path.join(allowed, 'ok.txt');
      await assert.rejects(
        openLocalFile(p, [allowed], {
          afterCheck: async () => {
            await unlink(p);
            await symlink(secretFile, p);
          },
        }),
        /refused: '.*ok\.txt' became a symlink after it was checked/,
      );
    });

    it('a directory swapped for a symlink to outside after the check is refused (/proc/self/fd)', async function () {
      const dir = path.join(allowed, 'sub');
      await mkdir(dir);
      await writeFile(path.join(dir, 'secret'), 'harmless');
      const p = path.join(dir, 'secret');
      await assert.rejects(
        openLocalFile(p, [allowed], {
          afterCheck: async () => {
            await rename(dir, path.join(allowed, 'sub-moved'));
            await symlink(root, dir);
          },
        }),
        /refused: '.*sub\/secret' moved outside the allowed prefix while it was opened/,
      );
    });

    it('an untouched file opens and its handle is released by close()', async function () {
      const got = await openLocalFile(path.join(allowed, 'ok.txt'), [allowed]);
      assert.equal(got.size, 4);
      got.close();
      got.close();
    });
  });
});
