/** The local registry that scripts/engine-up.sh runs (plain http; Docker trusts 127.0.0.0/8 by default). */
export const REGISTRY = "127.0.0.1:5000";

const MANIFEST_TYPES = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

/** True when the local registry serves a manifest for `name:tag` (e.g. 'berth-test/busybox', '1'). */
export async function registryHasManifest(name: string, tag: string, timeoutMs = 5000): Promise<boolean> {
  const url = `http://${REGISTRY}/v2/${name}/manifests/${tag}`;
  const res = await fetch(url, {
    headers: { accept: MANIFEST_TYPES },
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.body?.cancel();
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw new Error(`registry answered ${res.status} to GET ${url}; expected 200 or 404`);
}
