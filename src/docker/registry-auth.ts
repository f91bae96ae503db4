/**
 * Registry credentials from a Docker `config.json` (`--docker_config`, as in Mesos): a path to the
 * file, or its JSON inline when the value starts with `{`. The file is read again at each pull, so
 * rotated credentials take effect without a restart.
 *
 * Only `auths` is read, the way the docker CLI reads it: per registry an `auth` (base64 of
 * `user:password`), or `username` and `password`, or an `identitytoken`. Keys may be written as a
 * host (`127.0.0.1:5001`), a URL (`https://127.0.0.1:5001`, `http://host/v2/`) or Docker Hub's
 * historical `https://index.docker.io/v1/`; they are matched by host. Credential helpers
 * (`credsStore`, `credHelpers`) are programs the docker CLI runs; Berth runs none of them, and
 * only names the one that applies when a registry refuses a pull made without credentials.
 *
 * No message built here ever contains a secret: errors name the file, the registry key and the
 * field, never a value.
 */
import { open } from "node:fs/promises";
import { DEFAULT_REGISTRY, normalizeRegistry, registryOf } from "../policy/policy.js";
import type { RegistryAuth } from "./engine-port.js";

/** The `serveraddress` the docker CLI sends for Docker Hub (and its usual `auths` key). */
const DOCKER_HUB_SERVER_ADDRESS = "https://index.docker.io/v1/";
/** A config.json is a few KiB; anything this big is not one. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** A `--docker_config` that cannot be used; the message names the file and the problem, never a secret. */
export class DockerConfigError extends Error {
  override readonly name = "DockerConfigError";
}

/** What a pull of one image gets from the config. */
export interface RegistryCredentials {
  /** The image's registry host (`127.0.0.1:5001`, `docker.io`). */
  registry: string;
  /** Credentials for it, when the config holds some. */
  auth?: RegistryAuth;
  /** Without credentials: the credential helper the config names for it (which Berth does not run). */
  helper?: string;
}

/**
 * The registry host of an image reference, as the operator policy reads it (its
 * `allowed_registries` check and these credentials must agree on which registry an image is from).
 */
export const registryOfImage = registryOf;

/**
 * The registry host an `auths` key names: scheme and path dropped (`https://h:5001/v2/` → `h:5001`),
 * lower-cased, Docker Hub's names folded into `docker.io`. Empty when the key names no host.
 */
export function normalizeRegistryKey(key: string): string {
  let s = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) s = s.slice(scheme[0].length);
  const slash = s.indexOf("/");
  if (slash !== -1) s = s.slice(0, slash);
  return normalizeRegistry(s);
}

type Entry = { key: string; auth?: RegistryAuth };

/** A parsed, validated config: credentials by registry host. */
export interface DockerConfig {
  /** Credentials (or the absence of them, for an empty entry) by normalized registry host. */
  byRegistry: Map<string, Entry>;
  /** `credHelpers` by normalized registry host, and `credsStore` (named in messages only). */
  helpers: Map<string, string>;
  credsStore?: string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates the config's text. `source` names it in messages (`--docker_config
 * '/etc/berth/docker.json'`). Throws DockerConfigError naming the key and field at fault.
 */
export function parseDockerConfig(text: string, source: string): DockerConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DockerConfigError(`${source} is not valid JSON${whereJsonBroke(text, (err as Error).message)}`);
  }
  if (!isObject(json)) throw new DockerConfigError(`${source} is not a JSON object (expected {"auths": {...}})`);
  const byRegistry = new Map<string, Entry>();
  const helpers = new Map<string, string>();
  const store = json.credsStore;
  if (store !== undefined && store !== null && typeof store !== "string") throw new DockerConfigError(`${source}: "credsStore" is not a string`);
  const credHelpers = json.credHelpers;
  if (credHelpers !== undefined && credHelpers !== null) {
    if (!isObject(credHelpers)) throw new DockerConfigError(`${source}: "credHelpers" is not an object of registry → helper name`);
    for (const [key, helper] of Object.entries(credHelpers)) {
      if (typeof helper !== "string") throw new DockerConfigError(`${source}: credHelpers[${JSON.stringify(key)}] is not a string`);
      helpers.set(normalizeRegistryKey(key), helper);
    }
  }
  const config: DockerConfig = typeof store === "string" && store !== "" ? { byRegistry, helpers, credsStore: store } : { byRegistry, helpers };
  const auths = json.auths;
  if (auths === undefined || auths === null) return config;
  if (!isObject(auths)) throw new DockerConfigError(`${source}: "auths" is not an object of registry → credentials`);
  for (const [key, value] of Object.entries(auths)) {
    const where = `${source}: auths[${JSON.stringify(key)}]`;
    const host = normalizeRegistryKey(key);
    if (host === "") throw new DockerConfigError(`${where} names no registry host`);
    if (!isObject(value)) throw new DockerConfigError(`${where} is not an object`);
    const auth = entryAuth(value, where, host);
    const entry: Entry = auth === undefined ? { key } : { key, auth };
    const existing = byRegistry.get(host);
    // Several keys naming one host: the key that is exactly the host wins, else the first one.
    if (existing === undefined || (key === host && existing.key !== host)) byRegistry.set(host, entry);
  }
  return config;
}

/**
 * Where the parse failed, as ` (at line L, column C)`, or ` (it ends early)`. Never the parser's
 * own message: it can quote the text around the error, which may be a secret.
 */
function whereJsonBroke(text: string, parserMessage: string): string {
  const at = /at position (\d+)/.exec(parserMessage);
  if (at) {
    const before = text.slice(0, Number(at[1]));
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    return ` (at line ${line}, column ${column})`;
  }
  if (/end of (JSON )?input/i.test(parserMessage)) return " (it ends early)";
  return "";
}

function optionalString(entry: Record<string, unknown>, field: string, where: string): string | undefined {
  const v = entry[field];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new DockerConfigError(`${where}.${field} is not a string`);
  return v;
}

function entryAuth(entry: Record<string, unknown>, where: string, host: string): RegistryAuth | undefined {
  const serveraddress = host === DEFAULT_REGISTRY ? DOCKER_HUB_SERVER_ADDRESS : host;
  const encoded = optionalString(entry, "auth", where);
  let username = optionalString(entry, "username", where);
  let password = optionalString(entry, "password", where);
  const identitytoken = optionalString(entry, "identitytoken", where);
  if (encoded !== undefined) {
    const compact = encoded.replace(/\s+/g, "");
    if (!BASE64.test(compact)) throw new DockerConfigError(`${where}.auth is not base64 (expected base64 of 'user:password')`);
    const decoded = Buffer.from(compact, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new DockerConfigError(`${where}.auth does not decode to 'user:password'`);
    // As the docker CLI: `auth` wins over username/password written beside it.
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (identitytoken !== undefined) return { serveraddress, identitytoken };
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined) throw new DockerConfigError(`${where} has a password but no username`);
  if (password === undefined || password === "") throw new DockerConfigError(`${where} has a username but no password`);
  return { serveraddress, username, password };
}

/** Reads at most MAX_CONFIG_BYTES of `file`. */
async function readBounded(file: string, source: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (err) {
    throw new DockerConfigError(`${source} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new DockerConfigError(`${source} is not a regular file`);
    const buf = Buffer.alloc(Math.min(st.size, MAX_CONFIG_BYTES) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) throw new DockerConfigError(`${source} is larger than ${MAX_CONFIG_BYTES} bytes; not a Docker config.json`);
      if (length === buf.length) break;
    }
    return buf.subarray(0, length).toString("utf8");
  } catch (err) {
    if (err instanceof DockerConfigError) throw err;
    throw new DockerConfigError(`${source} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    await handle.close();
  }
}

/** The `--docker_config` value: where the credentials come from, read again at every lookup. */
export class DockerConfigSource {
  /** How messages name it: `--docker_config '/path'` or `--docker_config (inline JSON)`. */
  readonly description: string;
  private readonly inline: string | undefined;
  private readonly file: string | undefined;

  constructor(value: string) {
    if (value.trim() === "") throw new DockerConfigError("--docker_config is empty: give a path to a Docker config.json or its JSON");
    if (value.trimStart().startsWith("{")) {
      this.inline = value;
      this.description = "--docker_config (inline JSON)";
    } else {
      this.file = value;
      this.description = `--docker_config '${value}'`;
    }
  }

  /** Reads and validates the config now. */
  async load(): Promise<DockerConfig> {
    const text = this.inline ?? (await readBounded(this.file!, this.description));
    return parseDockerConfig(text, this.description);
  }

  /** The credentials for `ref`'s registry, from the config as it is now. */
  async credentialsFor(ref: string): Promise<RegistryCredentials> {
    const registry = registryOfImage(ref);
    const config = await this.load();
    const auth = config.byRegistry.get(registry)?.auth;
    if (auth !== undefined) return { registry, auth };
    // As the docker CLI: a per-registry helper first, then the store for all registries.
    const helper = config.helpers.get(registry) ?? config.credsStore;
    return helper === undefined ? { registry } : { registry, helper };
  }
}

/** The secret strings of `auth` in every form a message could carry them (raw, base64, the header). */
function secretForms(auth: RegistryAuth): string[] {
  const forms: string[] = [];
  const add = (s: string): void => {
    if (s === "") return;
    forms.push(s, Buffer.from(s).toString("base64"), Buffer.from(s).toString("base64url"));
  };
  if ("password" in auth) {
    add(auth.password);
    add(`${auth.username}:${auth.password}`);
  } else {
    add(auth.identitytoken);
  }
  add(JSON.stringify(auth));
  // Longer forms first, so a part of one is never left half-replaced.
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

/** `text` with every form of `auth`'s secret replaced by `[redacted]`. */
export function redactCredentials(text: string, auth: RegistryAuth | undefined): string {
  if (auth === undefined) return text;
  let out = text;
  for (const form of secretForms(auth)) out = out.split(form).join("[redacted]");
  return out;
}

/** The `--docker_config` source, checked once now (start-up); it is read again at every pull. */
export async function checkedDockerConfig(value: string): Promise<DockerConfigSource> {
  const source = new DockerConfigSource(value);
  await source.load();
  return source;
}
