import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescMethod, type DescService, type FileRegistry, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { repoRoot } from "../support/dev-dir.js";
import { ensureEngine, ensureTestImages, removeTestContainers } from "../support/engine.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { ReflectionClient, resolveSymbol } from "../harness/reflection-client.js";
import { BerthProcess } from "../harness/process-berth.js";
import { shellCommands } from "../harness/shell-words.js";

/**
 * The grpcurl cookbook (examples/grpcurl/README.md), run as written: every grpcurl line of its sh
 * blocks is parsed as grpcurl parses it (address, TLS files, -H headers, -d @ with the body file
 * redirected on stdin, method, list/describe) and sent to a real `berth serve` through a client that
 * learns the API only by server reflection, as grpcurl does. grpcurl itself is not in Debian's apt
 * (and there is no network here), so this is the closest faithful run; bodies go through
 * protobuf-JSON parsing as strict as grpcurl's (unknown fields are refused).
 */

const COOKBOOK_DIR = path.join(repoRoot(), "examples", "grpcurl");
const COOKBOOK = path.join(COOKBOOK_DIR, "README.md");
const SOCKET = "/var/lib/berth/berth.sock";
const TLS_ADDRESS = "localhost:7443";
const SERVICE = "berth.v1.Containerizer";
const CALL_DEADLINE_MS = 120_000;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any


/** grpcurl's `-d @` input: a stream of JSON values, one after another (whitespace between). */
function jsonStream(text: string): JsonValue[] {
  const values: JsonValue[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) values.push(JSON.parse(text.slice(start, i + 1)) as JsonValue);
    } else if (depth === 0 && !/\s/.test(c)) {
      assert.fail(`only JSON objects are expected in a -d @ body, found '${c}' at offset ${i}`);
    }
  }
  assert.equal(depth, 0, "an unterminated JSON value in a -d @ body");
  return values;
}

/** One grpcurl line, understood as grpcurl understands it. */
interface GrpcurlLine {
  line: string;
  address: string;
  plaintext: boolean;
  unix: boolean;
  tls: { cacert?: string; cert?: string; key?: string };
  headers: string[];
  /** "list", "describe", or "package.Service/Method". */
  verb: string;
  symbol?: string;
  /** The body file (relative to the repo root) for `-d @ … < FILE`. */
  bodyFile?: string;
  /** The request messages (grpcurl: none without -d means one empty message). */
  bodies: JsonValue[];
}

async function parseGrpcurl(words: string[]): Promise<GrpcurlLine> {
  const line = words.map((w) => (/[\s$]/.test(w) ? `"${w}"` : w)).join(" ");
  const parsed: Omit<GrpcurlLine, "address" | "verb" | "bodies"> = { line, plaintext: false, unix: false, tls: {}, headers: [] };
  let data: string | undefined;
  const positional: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    const value = () => {
      assert.ok(i + 1 < words.length, `${w} needs a value: ${line}`);
      return words[++i]!;
    };
    if (w === "-plaintext") parsed.plaintext = true;
    else if (w === "-unix") parsed.unix = true;
    else if (w === "-d") data = value();
    else if (w === "-H") parsed.headers.push(value());
    else if (w === "-cacert") parsed.tls.cacert = value();
    else if (w === "-cert") parsed.tls.cert = value();
    else if (w === "-key") parsed.tls.key = value();
    else if (w === "<") parsed.bodyFile = value();
    else if (w.startsWith("-")) assert.fail(`the test does not know grpcurl flag '${w}' in: ${line}`);
    else positional.push(w);
  }
  assert.ok(positional.length >= 2, `address and method (or list/describe) expected: ${line}`);
  const [address, verb, symbol, ...rest] = positional as [string, string, string?, ...string[]];
  assert.deepEqual(rest, [], `unexpected words: ${line}`);
  assert.ok(parsed.plaintext !== Boolean(parsed.tls.cacert), `a line is either -plaintext or TLS with -cacert: ${line}`);
  assert.equal(Boolean(parsed.tls.cert), Boolean(parsed.tls.key), `-cert and -key go together: ${line}`);
  let bodies: JsonValue[] = [{}];
  if (data !== undefined) {
    assert.equal(data, "@", `the cookbook sends bodies from files with -d @: ${line}`);
    assert.ok(parsed.bodyFile, `-d @ reads stdin: redirect a body file with '<': ${line}`);
    bodies = jsonStream(await readFile(path.join(repoRoot(), parsed.bodyFile), "utf8"));
    assert.ok(bodies.length > 0, `${parsed.bodyFile} holds no JSON message`);
  } else {
    assert.equal(parsed.bodyFile, undefined, `a redirect without -d @ is not read by grpcurl: ${line}`);
  }
  if (verb === "describe") assert.ok(symbol, `describe names a symbol: ${line}`);
  else assert.equal(symbol, undefined, `one method per line: ${line}`);
  return { ...parsed, address, verb, symbol, bodies };
}

/** The sh blocks' commands of the cookbook, each a grpcurl line. */
async function cookbookLines(): Promise<GrpcurlLine[]> {
  const text = await readFile(COOKBOOK, "utf8");
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length > 0, "the cookbook has sh blocks");
  const lines: GrpcurlLine[] = [];
  for (const words of blocks.flatMap(shellCommands)) {
    assert.equal(words[0], "grpcurl", `the cookbook's sh blocks hold grpcurl lines only: ${words.join(" ")}`);
    lines.push(await parseGrpcurl(words));
  }
  return lines;
}

/** A grpc-js channel calling methods known only by their (reflected) descriptors. */
class DescriptorCaller {
  private readonly client: Client;

  constructor(address: string, creds: ChannelCredentials, private readonly metadata: () => Metadata) {
    this.client = new Client(address, creds);
  }

  private path(m: DescMethod): string {
    return `/${m.parent.typeName}/${m.name}`;
  }

  private codec(m: DescMethod) {
    return [(v: Message) => Buffer.from(toBinary(m.input, v)), (b: Buffer) => fromBinary(m.output, b) as Message] as const;
  }

  /** Sends every request (one for unary and server streaming) and resolves with every answer. */
  call(m: DescMethod, requests: Message[]): Promise<Message[]> {
    const [ser, de] = this.codec(m);
    const options = { deadline: Date.now() + CALL_DEADLINE_MS };
    const fail = (reject: (e: Error) => void) => (err: ServiceError) => reject(Object.assign(new Error(`${m.name}: ${err.code} ${err.details}`), { code: err.code }));
    if (m.methodKind === "unary") {
      assert.equal(requests.length, 1, `${m.name} is unary: one message`);
      return new Promise((resolve, reject) => {
        this.client.makeUnaryRequest(this.path(m), ser, de, requests[0]!, this.metadata(), options, (err, res) => (err ? fail(reject)(err) : resolve([res!])));
      });
    }
    const answers: Message[] = [];
    return new Promise((resolve, reject) => {
      let stream;
      if (m.methodKind === "server_streaming") {
        assert.equal(requests.length, 1, `${m.name} is server streaming: one message`);
        stream = this.client.makeServerStreamRequest(this.path(m), ser, de, requests[0]!, this.metadata(), options);
      } else {
        assert.equal(m.methodKind, "bidi_streaming", `${m.name}: ${m.methodKind}`);
        const bidi = this.client.makeBidiStreamRequest(this.path(m), ser, de, this.metadata(), options);
        // As grpcurl with -d @: every message of stdin in order, then half-close at its end.
        for (const r of requests) bidi.write(r);
        bidi.end();
        stream = bidi;
      }
      stream.on("data", (a: Message) => answers.push(a));
      stream.on("error", fail(reject));
      stream.on("end", () => resolve(answers));
    });
  }

  /** A server stream read until `done` holds for a message (then cancelled); rejects if it ends first. */
  until(m: DescMethod, request: Message, done: (m: Message) => boolean): Promise<void> {
    const [ser, de] = this.codec(m);
    const call = this.client.makeServerStreamRequest(this.path(m), ser, de, request, this.metadata(), { deadline: Date.now() + CALL_DEADLINE_MS });
    return new Promise<void>((resolve, reject) => {
      call.on("data", (a: Message) => {
        if (!done(a)) return;
        resolve();
        call.cancel();
      });
      call.on("error", (err: ServiceError) => (err.code === 1 ? undefined : reject(new Error(`${m.name}: ${err.code} ${err.details}`))));
      call.on("end", () => reject(new Error(`${m.name} ended before the awaited message`)));
    });
  }

  close(): void {
    this.client.close();
  }
}

describe("the grpcurl cookbook (examples/grpcurl), run as written against a real berth serve", function () {
  this.timeout(300_000);
  let docker: Dockerode;
  let pki: TestPki;
  const dirs: string[] = [];
  const processes: BerthProcess[] = [];
  const agents: string[] = [];
  const closers: { close(): void }[] = [];

  async function serve(args: string[]): Promise<string[]> {
    const workDir = await mkdtemp(path.join(os.tmpdir(), "berth-cookbook-"));
    dirs.push(workDir);
    const p = new BerthProcess(["serve", "--work_dir", workDir, "--docker_stop_timeout", "2secs", ...args]);
    processes.push(p);
    const serving = await p.serving();
    agents.push(serving.agent_id);
    return serving.listen;
  }

  before(async () => {
    docker = await ensureEngine();
    await ensureTestImages(docker);
    pki = await makeTestPki();
  });

  after(async () => {
    closers.forEach((c) => c.close());
    for (const p of processes) p.kill("SIGTERM");
    await Promise.all(processes.map((p) => p.exited));
    for (const agent of agents) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agent });
    await pki?.remove();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("every body file is used by a cookbook line, and every Containerizer RPC has a line", async () => {
    const lines = await cookbookLines();
    const files = (await readdir(COOKBOOK_DIR)).filter((f) => f.endsWith(".json")).map((f) => `examples/grpcurl/${f}`);
    const used = new Set(lines.map((l) => l.bodyFile).filter(Boolean));
    assert.deepEqual(files.filter((f) => !used.has(f)), [], "body files no line sends");
    const plain = lines.filter((l) => l.plaintext && l.unix && l.headers.length === 0).map((l) => l.verb);
    const rpcs = ["Launch", "Wait", "Destroy", "Watch", "Containers", "Status", "Update", "Usage", "PruneImages", "Logs", "ExecSync", "Exec"];
    assert.deepEqual(rpcs.filter((r) => !plain.includes(`${SERVICE}/${r}`)), [], "RPCs without a plaintext unix-socket line");
    for (const v of ["list", "describe", "grpc.health.v1.Health/Check"]) assert.ok(plain.includes(v), `a ${v} line`);
    assert.ok(lines.some((l) => l.tls.cacert && l.tls.cert && l.headers.length === 0), "a TLS line");
    assert.ok(lines.some((l) => l.unix && l.headers.length > 0), "a token line on the unix socket");
    assert.ok(lines.some((l) => l.tls.cacert && l.headers.length > 0), "a TLS + token line");
  });

  it("every line runs, in order, with the answers the cookbook describes", async () => {
    const token = "cookbook-test-token";
    const tokenDir = await mkdtemp(path.join(os.tmpdir(), "berth-cookbook-token-"));
    dirs.push(tokenDir);
    const tokenFile = path.join(tokenDir, "tokens");
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });

    // Plain: the cookbook's /var/lib/berth/berth.sock. Secured: the token and TLS patterns (one
    // server: a unix socket with the token, and loopback TCP with mutual TLS and the token).
    const [plainSocket] = await serve([]);
    const securedSocketDir = await mkdtemp(path.join(os.tmpdir(), "berth-cookbook-sock-"));
    dirs.push(securedSocketDir);
    const secured = await serve([
      "--listen", `unix://${path.join(securedSocketDir, "berth.sock")}`, "--listen", "127.0.0.1:0",
      "--tls_cert", pki.server.certFile, "--tls_key", pki.server.keyFile, "--tls_client_ca", pki.ca.certFile,
      "--auth_token_file", tokenFile,
    ]);
    const securedSocket = secured.find((a) => a.startsWith("unix://"))!;
    const securedTcpPort = secured.find((a) => !a.startsWith("unix://"))!.split(":").pop()!;

    // The descriptors, learnt as grpcurl learns them: reflection (of the plain server; both run the same binary).
    const reflection = new ReflectionClient(plainSocket!, "v1");
    closers.push(reflection);
    const registries = new Map<string, FileRegistry>();
    async function registryFor(symbol: string): Promise<FileRegistry> {
      const known = registries.get(symbol);
      if (known) return known;
      const resolved = await resolveSymbol(reflection, symbol);
      const [root] = [...resolved.files.values()];
      const registry = createFileRegistry(root!, (name) => resolved.files.get(name));
      registries.set(symbol, registry);
      return registry;
    }

    const tlsFiles: Record<string, Buffer> = {
      "ca.pem": pki.ca.cert,
      "client.pem": pki.client.cert,
      "client.key": pki.client.key,
    };
    const callers = new Map<string, DescriptorCaller>();
    /** The channel a line talks on: its address, TLS files and -H token mapped onto the test's servers. */
    function callerFor(l: GrpcurlLine): DescriptorCaller {
      const tokens = l.headers.map((h) => {
        assert.match(h, /^authorization: Bearer \$\(cat \S+\)$/, `a -H is the bearer token read from a file: ${l.line}`);
        return token;
      });
      let address: string;
      let creds: ChannelCredentials;
      if (l.unix) {
        assert.equal(l.address, SOCKET, `the socket npm run serve creates: ${l.line}`);
        address = tokens.length > 0 ? securedSocket : plainSocket!;
        creds = credentials.createInsecure();
      } else {
        assert.equal(l.address, TLS_ADDRESS, `the TLS examples' address: ${l.line}`);
        address = `localhost:${securedTcpPort}`;
        const file = (name: string | undefined) => {
          assert.ok(name && tlsFiles[name], `a TLS file the test knows (${Object.keys(tlsFiles).join(", ")}): ${l.line}`);
          return tlsFiles[name]!;
        };
        creds = credentials.createSsl(file(l.tls.cacert), l.tls.key ? file(l.tls.key) : null, l.tls.cert ? file(l.tls.cert) : null);
      }
      const key = `${address} ${l.tls.cert ?? ""} ${tokens.join()}`;
      let caller = callers.get(key);
      if (!caller) {
        caller = new DescriptorCaller(address, creds, () => {
          const md = new Metadata();
          for (const t of tokens) md.set("authorization", `Bearer ${t}`);
          return md;
        });
        callers.set(key, caller);
        closers.push(caller);
      }
      return caller;
    }

    const lines = await cookbookLines();
    const answers: { l: GrpcurlLine; json: Json[] }[] = [];
    for (const l of lines) {
      if (l.verb === "list") {
        answers.push({ l, json: (await reflection.listServices()).map((name) => ({ name })) });
        continue;
      }
      if (l.verb === "describe") {
        const registry = await registryFor(l.symbol!);
        const desc = registry.get(l.symbol!);
        assert.ok(desc, `reflection resolves ${l.symbol}: ${l.line}`);
        const json: Json =
          desc.kind === "service" ? { methods: desc.methods.map((m) => m.name) } : desc.kind === "message" ? { fields: desc.fields.map((f) => f.name) } : { kind: desc.kind };
        answers.push({ l, json: [json] });
        continue;
      }
      const slash = l.verb.lastIndexOf("/");
      assert.ok(slash > 0, `Service/Method expected: ${l.line}`);
      const serviceName = l.verb.slice(0, slash);
      const registry = await registryFor(serviceName);
      const service: DescService | undefined = registry.getService(serviceName);
      assert.ok(service, `reflection resolves ${serviceName}: ${l.line}`);
      const method = service.methods.find((m) => m.name === l.verb.slice(slash + 1));
      assert.ok(method, `${serviceName} has the method: ${l.line}`);
      // grpcurl's -d is protobuf JSON; unknown fields are an error there too.
      const requests = l.bodies.map((b) => fromJson(method.input, b, { registry }) as Message);
      let replies: Message[];
      try {
        replies = await callerFor(l).call(method, requests);
      } catch (err) {
        assert.fail(`${l.line}\nfailed: ${(err as Error).message}`);
      }
      const json = replies.map((r) => toJson(method.output, r, { registry }) as Json);
      answers.push({ l, json });
      // A person waits for RUNNING after launching the long-running container (the cookbook says so).
      if (method.name === "Launch" && l.bodyFile?.endsWith("launch-demo.json")) await untilRunning(callerFor(l), service, registry, "demo");
    }

    // COOKBOOK_TRANSCRIPT=FILE writes each line with its answers (as grpcurl would print them) there.
    if (process.env.COOKBOOK_TRANSCRIPT) {
      const transcript = answers.map(({ l, json }) => `$ ${l.line}\n${json.map((j) => JSON.stringify(j, null, 2)).join("\n")}\n`).join("\n");
      await writeFile(process.env.COOKBOOK_TRANSCRIPT, transcript);
    }

    /** The answers of the one line calling `verb` (with `bodyFile`, and -H or TLS when asked). */
    const answer = (verb: string, opts: { body?: string; secured?: "token" | "tls" | "both" } = {}) => {
      const found = answers.filter(({ l }) => {
        const kind = l.tls.cacert ? (l.headers.length > 0 ? "both" : "tls") : l.headers.length > 0 ? "token" : undefined;
        return l.verb === verb && kind === opts.secured && (opts.body === undefined || l.bodyFile === `examples/grpcurl/${opts.body}`);
      });
      assert.equal(found.length, 1, `exactly one cookbook line ${verb} ${JSON.stringify(opts)}`);
      return found[0]!.json;
    };
    const C = (m: string) => `${SERVICE}/${m}`;
    const text = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("utf8");

    const services = answer("list").map((s) => s.name);
    assert.deepEqual(services.sort(), [SERVICE, "grpc.health.v1.Health"], "list names the API and health (not reflection itself)");
    const describes = answers.filter(({ l }) => l.verb === "describe");
    const described = Object.fromEntries(describes.map(({ l, json }) => [l.symbol!, json[0]!]));
    assert.deepEqual(
      [...described[SERVICE]!.methods].sort(),
      ["Containers", "Destroy", "Exec", "ExecSync", "Launch", "Logs", "PruneImages", "Status", "Update", "Usage", "Wait", "Watch"],
    );
    assert.deepEqual(described["berth.v1.LaunchRequest"]!.fields, ["container_id", "container_config", "environment"]);
    assert.deepEqual(answer("grpc.health.v1.Health/Check"), [{ status: "SERVING" }]);

    // hello: runs to its end.
    const launched = answer(C("Launch"), { body: "launch-hello.json" })[0]!;
    assert.equal(launched.result, "LAUNCH_RESULT_LAUNCHED");
    assert.ok(BigInt(launched.firstSequence) > 0n, JSON.stringify(launched));
    const watched = answer(C("Watch"), { body: "watch.json" }).map((r) => r.event);
    assert.equal(watched[0].snapshot, true, "Watch starts with the snapshot");
    const states = watched.filter((e) => e.stateChanged).map((e) => e.stateChanged.state);
    // The snapshot holds the state at subscription (anything from FETCHING to TERMINATED: the
    // command is short); the live events follow up to the termination.
    assert.equal(states.at(-1), "STATE_TERMINATED", `Watch shows the states up to TERMINATED: ${states.join(", ")}`);
    const last = watched.at(-1)!.termination;
    assert.equal(last?.containerTermination?.state, "TASK_FAILED", JSON.stringify(watched.at(-1)));
    assert.equal(last.exitCode, 3);
    const waited = answer(C("Wait"), { body: "wait.json" })[0]!.termination;
    assert.equal(waited.containerTermination.state, "TASK_FAILED");
    assert.equal(waited.exitCode, 3);
    const resumed = answer(C("Watch"), { body: "watch-resume.json" }).map((r) => r.event);
    assert.ok(resumed.every((e) => !e.snapshot), "from_sequence: no snapshot");
    assert.equal(resumed[0].sequence, launched.firstSequence, "replayed from the container's first event");
    assert.equal(resumed[0].stateChanged?.state, "STATE_FETCHING");
    assert.equal(resumed.at(-1)!.termination?.exitCode, 3);
    const logs = answer(C("Logs"), { body: "logs.json" });
    assert.ok(logs.every((c) => c.stream === "LOG_STREAM_STDOUT"), JSON.stringify(logs));
    assert.equal(logs.map((c) => text(c.data)).join(""), "hello\n");
    assert.equal(logs[0]!.data, "aGVsbG8K", "the base64 the cookbook shows");

    // demo: runs until destroyed.
    assert.equal(answer(C("Launch"), { body: "launch-demo.json" })[0]!.result, "LAUNCH_RESULT_LAUNCHED");
    const listed = (answer(C("Containers"))[0]!.containers as Json[]).map((c) => [c.containerId.value, c.state]);
    assert.deepEqual(listed.sort(), [["demo", "STATE_RUNNING"], ["hello", "STATE_TERMINATED"]]);
    const status = answer(C("Status"), { body: "status.json" })[0]!;
    assert.equal(status.state, "STATE_RUNNING");
    assert.ok(status.containerStatus.executorPid > 0, JSON.stringify(status));
    assert.equal(status.image, "127.0.0.1:5000/berth-test/busybox:1");
    assert.deepEqual(answer(C("Update"), { body: "update.json" }), [{}]);
    const usage = answer(C("Usage"), { body: "usage.json" })[0]!.statistics;
    assert.equal(usage.cpusLimit, 0.5, JSON.stringify(usage));
    assert.equal(usage.memLimitBytes, "134217728", JSON.stringify(usage));
    const execSync = answer(C("ExecSync"), { body: "exec-sync.json" })[0]!;
    assert.equal(text(execSync.stdout), "hi grpcurl\nfrom stdin\n", JSON.stringify(execSync));
    assert.equal(execSync.exitCode, undefined, "exit code 0 is omitted");
    const exec = answer(C("Exec"), { body: "exec.json" });
    assert.deepEqual(exec.at(-1), { exitCode: 0 }, JSON.stringify(exec));
    assert.equal(exec.slice(0, -1).map((m) => text(m.stdout)).join(""), "HELLO EXEC\n", JSON.stringify(exec));
    const destroyed = answer(C("Destroy"), { body: "destroy.json" })[0]!.termination;
    assert.equal(destroyed.containerTermination.state, "TASK_KILLED", JSON.stringify(destroyed));
    assert.equal(destroyed.signal, 15, JSON.stringify(destroyed));
    assert.deepEqual(answer(C("PruneImages"), { body: "prune-images.json" }), [{}], "the excluded test image is kept");

    // The TLS and token patterns, on the secured server.
    assert.deepEqual(answer("grpc.health.v1.Health/Check", { secured: "tls" }), [{ status: "SERVING" }]);
    assert.ok(Array.isArray(answer(C("Containers"), { secured: "token" })), "Containers with the token");
    assert.equal(answer(C("Launch"), { secured: "both", body: "launch-hello.json" })[0]!.result, "LAUNCH_RESULT_LAUNCHED");
  });
});

/** Waits, through a Watch on the same channel, until the container is RUNNING. */
async function untilRunning(caller: DescriptorCaller, service: DescService, registry: FileRegistry, id: string): Promise<void> {
  const watch = service.methods.find((m) => m.name === "Watch")!;
  const request = fromJson(watch.input, { container_ids: [{ value: id }] }, { registry }) as Message;
  await caller.until(watch, request, (m) => (toJson(watch.output, m, { registry }) as Json).event?.stateChanged?.state === "STATE_RUNNING");
}
