import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import {
  AgentCheckpointSchema,
  ContainerCheckpointSchema,
  type AgentCheckpoint,
  type ContainerCheckpoint,
} from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import { syncDirectory, writeFileAtomic } from "./atomic-file.js";
import { DiskHealth, diskFailure } from "./disk-health.js";
import type { DurableWrite } from "./sequence-file.js";

const SUFFIX = ".pb";
const LOAD_BATCH = 32;

/** What was found on disk at start. */
export interface LoadedCheckpoints {
  containers: ContainerCheckpoint[];
  agent: AgentCheckpoint | undefined;
  /** Files that could not be decoded; moved aside to `<name>.corrupt`. */
  corrupt: string[];
}

/** Options of a CheckpointStore. */
export interface CheckpointStoreOptions {
  /** Default writeFileAtomic; injectable so tests can make the disk fail. */
  write?: DurableWrite;
  /** Where failed and succeeded writes are reported (default: a health of its own). */
  health?: DiskHealth;
  /** Told of every durable write (the container's record, or undefined for the agent's), its seconds and outcome (metrics). */
  observer?: (checkpoint: ContainerCheckpoint | undefined, seconds: number, ok: boolean) => void;
}

/**
 * Durable per-container records under `<work_dir>/meta`: one small protobuf file per container,
 * replaced atomically. Writes of one container are applied in order (a later state never lands
 * before an earlier one); writes of different containers never wait for each other.
 */
export class CheckpointStore {
  private readonly containersDir: string;
  private readonly agentFile: string;
  private readonly chains = new Map<string, Promise<void>>();
  private agentChain: Promise<void> = Promise.resolve();
  private readonly write: DurableWrite;
  private readonly observer: CheckpointStoreOptions["observer"];
  /** Whether writes land: a failed one (ENOSPC, EIO) turns it unhealthy until one succeeds. Share it with the SequenceFile. */
  readonly health: DiskHealth;

  constructor(
    readonly dir: string,
    options: CheckpointStoreOptions = {},
  ) {
    this.containersDir = path.join(dir, "containers");
    this.agentFile = path.join(dir, "agent.pb");
    this.write = options.write ?? writeFileAtomic;
    this.observer = options.observer;
    this.health = options.health ?? new DiskHealth();
  }

  /** Creates the folders (and makes their creation durable). */
  async init(): Promise<void> {
    await mkdir(this.containersDir, { recursive: true, mode: 0o700 });
    await syncDirectory(this.dir);
  }

  /** Writes a container's record durably; resolves once it would survive a crash. */
  save(checkpoint: ContainerCheckpoint): Promise<void> {
    const id = checkpoint.containerId;
    const bytes = toBinary(ContainerCheckpointSchema, checkpoint);
    return this.chain(id, () => this.durably(`recording container '${id}'`, this.containerFile(id), bytes, checkpoint));
  }

  /** Forgets a container (after its termination is no longer retained). */
  remove(containerId: string): Promise<void> {
    return this.chain(containerId, () => rm(this.containerFile(containerId), { force: true }));
  }

  /** Writes the agent's record durably. */
  saveAgent(agent: AgentCheckpoint): Promise<void> {
    const bytes = toBinary(AgentCheckpointSchema, agent);
    const next = this.agentChain.then(() => this.durably("recording the agent", this.agentFile, bytes));
    this.agentChain = next.catch(() => undefined);
    return next;
  }

  /** Reads every record; undecodable files are moved aside and reported, never fatal. */
  async load(): Promise<LoadedCheckpoints> {
    const corrupt: string[] = [];
    const containers: ContainerCheckpoint[] = [];
    const loadOne = async (name: string): Promise<void> => {
      const file = path.join(this.containersDir, name);
      if (name.startsWith(".") && name.endsWith(".tmp")) {
        // A write that died before its rename: the previous record (if any) is still whole.
        await rm(file, { force: true });
        return;
      }
      if (!name.endsWith(SUFFIX)) return;
      try {
        const cp = fromBinary(ContainerCheckpointSchema, await readFile(file));
        if (`${cp.containerId}${SUFFIX}` !== name) throw new Error(`names container '${cp.containerId}'`);
        containers.push(cp);
      } catch (err) {
        corrupt.push(`${file}: ${(err as Error).message}`);
        await rename(file, `${file}.corrupt`).catch(() => undefined);
      }
    };
    // Read in batches: a restart with hundreds of containers should not wait for them one by one,
    // nor open them all at once.
    const names = (await readdir(this.containersDir)).sort();
    for (let i = 0; i < names.length; i += LOAD_BATCH) await Promise.all(names.slice(i, i + LOAD_BATCH).map(loadOne));
    containers.sort((a, b) => (a.containerId < b.containerId ? -1 : a.containerId > b.containerId ? 1 : 0));
    let agent: AgentCheckpoint | undefined;
    try {
      agent = fromBinary(AgentCheckpointSchema, await readFile(this.agentFile));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        corrupt.push(`${this.agentFile}: ${(err as Error).message}`);
        await rename(this.agentFile, `${this.agentFile}.corrupt`).catch(() => undefined);
      }
    }
    return { containers, agent, corrupt };
  }

  /**
   * Reads only the agent's record (undefined when there is none yet). An undecodable one is moved
   * aside and reported as undefined, as load() does.
   */
  async loadAgent(): Promise<AgentCheckpoint | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.agentFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      return fromBinary(AgentCheckpointSchema, bytes);
    } catch {
      await rename(this.agentFile, `${this.agentFile}.corrupt`).catch(() => undefined);
      return undefined;
    }
  }

  /** Resolves once every write issued so far has landed. */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values(), this.agentChain]);
  }

  /** One durable write, its outcome reported to `health`; a failure becomes DiskFailed naming the file. */
  private async durably(what: string, file: string, bytes: Uint8Array, checkpoint?: ContainerCheckpoint): Promise<void> {
    const started = this.observer && performance.now();
    try {
      await this.write(file, bytes);
    } catch (err) {
      const failure = diskFailure(`${what} in '${file}'`, err);
      this.health.failed(failure);
      if (started !== undefined) this.observer?.(checkpoint, (performance.now() - started) / 1000, false);
      throw failure;
    }
    if (started !== undefined) this.observer?.(checkpoint, (performance.now() - started) / 1000, true);
    this.health.succeeded();
  }

  private containerFile(id: string): string {
    return path.join(this.containersDir, `${id}${SUFFIX}`);
  }

  private chain(id: string, write: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.then(write);
    const settled = next.catch(() => undefined);
    this.chains.set(id, settled);
    void settled.then(() => {
      if (this.chains.get(id) === settled) this.chains.delete(id);
    });
    return next;
  }
}
