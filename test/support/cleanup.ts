import type Dockerode from "dockerode";

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

/** Removes an image reference from the engine (forced: untags even if containers use it); a missing image is fine. */
export async function removeImage(docker: Dockerode, ref: string): Promise<void> {
  try {
    await docker.getImage(ref).remove({ force: true });
  } catch (err) {
    if (statusOf(err) === 404) return;
    throw new Error(`removing image '${ref}' failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Force-removes (with volumes) every container that carries all of `labels`. */
export async function removeTestContainers(docker: Dockerode, labels: Record<string, string>): Promise<void> {
  const filters = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
  if (filters.length === 0) {
    throw new Error("removeTestContainers: labels is empty; refusing to remove every container");
  }
  const found = await docker.listContainers({ all: true, filters: { label: filters } });
  await Promise.all(
    found.map(async (info) => {
      try {
        await docker.getContainer(info.Id).remove({ force: true, v: true });
      } catch (err) {
        // 404: already gone; 409: a removal is already in progress.
        if (statusOf(err) === 404 || statusOf(err) === 409) return;
        throw new Error(`removing test container '${info.Id}' failed: ${(err as Error).message}`, { cause: err });
      }
    }),
  );
}
