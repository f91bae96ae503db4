import { constants as fsc } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/**
 * The fetcher's own log lines in the sandbox, as Mesos' fetcher writes them to the sandbox's
 * `stderr` ("Fetching URI '…'", "Fetched '…' to '…'", "Extracted '…' into '…'") in glog's line
 * format. The file is opened once, in append mode, before anything is fetched: a symlink at its name
 * is never followed (O_NOFOLLOW), and an archive that later replaces the name cannot redirect the
 * lines. Writing is best effort: a failed log write never changes how the fetch ends. Callers pass
 * URIs already redacted; control characters are shown escaped so a remote error text cannot forge
 * lines.
 */
export class FetchLog {
  private constructor(private fh: FileHandle | undefined) {}

  /** A log appending to `sandboxReal`/`name`, or one that writes nowhere when `name` is undefined. */
  static async open(sandboxReal: string, name: string | undefined): Promise<FetchLog> {
    if (name === undefined) return new FetchLog(undefined);
    let fh: FileHandle | undefined;
    try {
      fh = await open(path.join(sandboxReal, name), fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY, 0o644);
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        fh = undefined;
      }
    } catch {
      await fh?.close().catch(() => undefined);
      fh = undefined;
    }
    return new FetchLog(fh);
  }

  info(message: string): Promise<void> {
    return this.write('I', message);
  }

  warn(message: string): Promise<void> {
    return this.write('W', message);
  }

  error(message: string): Promise<void> {
    return this.write('E', message);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
  }

  private async write(level: 'I' | 'W' | 'E', message: string): Promise<void> {
    if (!this.fh) return;
    const safe = message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
    await this.fh.write(`${glogPrefix(level, new Date())} fetcher] ${safe}\n`).catch(() => undefined);
  }
}

/** glog's `Lmmdd hh:mm:ss.uuuuuu` (local time, as Mesos' fetcher prints it). */
function glogPrefix(level: string, d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const micros = String(d.getMilliseconds() * 1000).padStart(6, '0');
  return `${level}${two(d.getMonth() + 1)}${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${micros}`;
}
