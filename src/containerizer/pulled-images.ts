import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import type { ImagePuller, PullOptions } from "../docker/image-puller.js";
import { AgentCheckpointSchema } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";

/**
 * The image references Berth itself pulled: the only images PruneImages may remove. Kept durably
 * in the agent checkpoint (AgentCheckpoint.pulled_images), so a restart does not turn Berth's own
 * pulls into "someone else's images" that are never pruned.
 */
export class PulledImages {
  private readonly refs = new Set<string>();
  private loaded: Promise<void> | undefined;

  constructor(
    private readonly store: CheckpointStore | undefined,
    private readonly log: Logger,
  ) {}

  /** Reads the durable set (once; later calls share the first read). */
  load(): Promise<void> {
    this.loaded ??= (this.store?.loadAgent() ?? Promise.resolve(undefined)).then(
      (agent) => {
        for (const ref of agent?.pulledImages ?? []) this.refs.add(ref);
      },
      (err: unknown) => {
        // Not cached: the next call tries again rather than forgetting every earlier pull.
        this.loaded = undefined;
        throw new Error(`could not read the pulled images from ${this.store?.dir}: ${(err as Error).message}`, { cause: err });
      },
    );
    return this.loaded;
  }

  /** Records a pull durably. A failure is logged, not thrown: the launch that pulled goes on. */
  async add(ref: string): Promise<void> {
    try {
      await this.load();
      if (this.refs.has(ref)) return;
      this.refs.add(ref);
      await this.save();
    } catch (err) {
      this.log.warn({ err, image: ref }, "could not record the pulled image; PruneImages will not remove it");
    }
  }

  /** Forgets images that are gone from the engine. */
  async forget(refs: string[]): Promise<void> {
    if (refs.length === 0) return;
    for (const ref of refs) this.refs.delete(ref);
    await this.save();
  }

  /** Every recorded reference, in the order they were first pulled. */
  async list(): Promise<string[]> {
    await this.load();
    return [...this.refs];
  }

  private save(): Promise<void> {
    return this.store?.saveAgent(create(AgentCheckpointSchema, { pulledImages: [...this.refs] })) ?? Promise.resolve();
  }
}

/**
 * The puller the launch pipeline uses: the shared puller, with every completed pull recorded
 * before the launch goes on. The ImagePuller itself (shared, reference-counted transfers) stays
 * unaware of the bookkeeping; everything but `pull` is the original's.
 */
export function recordingPuller(puller: ImagePuller, images: PulledImages): ImagePuller {
  const wrapper = Object.create(puller) as ImagePuller;
  wrapper.pull = async (ref: string, opts: PullOptions): Promise<void> => {
    await puller.pull(ref, opts);
    await images.add(ref);
  };
  return wrapper;
}

/**
 * Docker's canonical form of an image reference, so that `busybox`, `busybox:latest` and
 * `docker.io/library/busybox:latest` compare equal: default registry, `library/` for official
 * images, `:latest` when neither a tag nor a digest is given.
 */
export function canonicalImageRef(ref: string): string {
  let name = ref.trim();
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  const hasDomain = slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost");
  if (!hasDomain) name = `docker.io/${name}`;
  if (name.startsWith("docker.io/") && !name.slice("docker.io/".length).includes("/")) name = `docker.io/library/${name.slice("docker.io/".length)}`;
  const lastPart = name.slice(name.lastIndexOf("/") + 1);
  if (!lastPart.includes(":") && !lastPart.includes("@")) name = `${name}:latest`;
  return name;
}
