import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A key pair with its certificate, as PEM files and their bytes. */
export interface Issued {
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
}

/** Certificates made for one test run: a CA with a server and a client certificate, and a second CA with a client. */
export interface TestPki {
  dir: string;
  ca: Issued;
  /** Signed by `ca`, for 127.0.0.1 and localhost. */
  server: Issued;
  /** Signed by `ca`, for client authentication. */
  client: Issued;
  /** A different CA, unknown to the server. */
  otherCa: Issued;
  /** Signed by `otherCa`. */
  otherClient: Issued;
  remove(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run("openssl", args, { cwd });
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function issued(dir: string, name: string): Promise<Issued> {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  return { keyFile, certFile, key: await readFile(keyFile), cert: await readFile(certFile) };
}

async function makeCa(dir: string, name: string): Promise<Issued> {
  await openssl(["req", "-x509", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=berth-test-${name}`], dir);
  return issued(dir, name);
}

async function sign(dir: string, ca: string, name: string, extensions: string): Promise<Issued> {
  await writeFile(path.join(dir, `${name}.ext`), extensions);
  await openssl(["req", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=berth-test-${name}`], dir);
  await openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`], dir);
  return issued(dir, name);
}

/** Generates the certificates with the machine's openssl into a fresh temp dir. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "berth-pki-"));
  const ca = await makeCa(dir, "ca");
  const otherCa = await makeCa(dir, "other-ca");
  const server = await sign(dir, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  const client = await sign(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
  const otherClient = await sign(dir, "other-ca", "other-client", "extendedKeyUsage=clientAuth\n");
  return { dir, ca, server, client, otherCa, otherClient, remove: () => rm(dir, { recursive: true, force: true }) };
}
