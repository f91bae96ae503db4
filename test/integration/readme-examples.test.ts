import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescMethod, type FileRegistry, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { repoRoot } from "../support/dev-dir.js";
import { ensureEngine, ensureTestImages, removeTestContainers } from "../support/engine.js";
import { DynamicClient } from "../harness/reflection-dynamic-client.js";
import { ReflectionClient, resolveSymbol } from "../harness/reflection-client.js";
import { BerthProcess, runBerth } from "../harness/process-berth.js";
import { shellCommands } from "../harness/shell-words.js";

/**
 * The README's grpcurl examples, run as written: every command of the sh blocks in "The API at a
 * glance" is read from README.md (method, request body after -d, socket) and sent to a real
 * `berth serve` through a client that learns the API only by reflection, as grpcurl does. The
 * README and this test cannot drift apart.
 */

const SECTION = "## The API at a glance";
const DEFAULT_WORK_DIR = "/var/lib/berth";

/** One shell command of a README code block, split into words (single/double quotes honoured). */
type Command = string[];

/** A grpcurl line, understood as grpcurl understands it. */
interface GrpcurlCall {
  line: string;
  socket: string;
  /** "list", or "package.Service/Method". */
  target: string;
  /** The JSON after -d, parsed (undefined: grpcurl sends an empty message). */
  body?: JsonValue;
}

function parseGrpcurl(words: string[]): GrpcurlCall {
  const line = words.join(" ");
  let unix = false;
  let plaintext = false;
  let body: JsonValue | undefined;
  const positional: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    if (w === "-plaintext") plaintext = true;
    else if (w === "-unix") unix = true;
    else if (w === "-d") body = JSON.parse(words[++i]!) as JsonValue;
    else if (w.startsWith("-")) assert.fail(`the test does not know grpcurl flag '${w}' in: ${line}`);
    else positional.push(w);
  }
  assert.ok(plaintext && unix, `a README example against the unix socket uses -plaintext -unix: ${line}`);
  assert.equal(positional.length, 2, `address and method (or list) expected: ${line}`);
  return { line, socket: positional[0]!, target: positional[1]!, body };
}

/** The commands of the sh blocks of one README section. */
async function readmeSectionCommands(): Promise<Command[]> {
  const readme = await readFile(path.join(repoRoot(), "README.md"), "utf8");
  const start = readme.indexOf(`\n${SECTION}\n`);
  assert.ok(start >= 0, `README.md has no '${SECTION}' section`);
  const rest = readme.slice(start + SECTION.length + 2);
  const end = rest.search(/\n#{2,3} /);
  const section = end >= 0 ? rest.slice(0, end) : rest;
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length > 0, `no sh code block in '${SECTION}'`);
  return blocks.flatMap(shellCommands);
}

/** A server-streaming call through the dynamic client's channel; resolves with every message once the stream ends OK. */
function serverStream(client: DynamicClient, method: DescMethod, request: Message, deadlineMs: number): Promise<Message[]> {
  const call = client.raw.makeServerStreamRequest(
    `/${client.service.typeName}/${method.name}`,
    (value: Message) => Buffer.from(toBinary(method.input, value)),
    (bytes: Buffer) => fromBinary(method.output, bytes) as Message,
    request,
    new Metadata(),
    { deadline: Date.now() + deadlineMs },
  );
  const messages: Message[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (m: Message) => messages.push(m));
    call.on("error", (err: ServiceError) => reject(new Error(`${method.name} stream failed: ${err.code} ${err.details}`)));
    call.on("end", () => resolve(messages));
  });
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("the README's grpcurl examples, run as written against a real berth serve", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let workDir: string;
  let berth: BerthProcess;
  let agentId: string;
  let socket: string;
  const clients: { close(): void }[] = [];

  before(async () => {
    docker = await ensureEngine();
    // The image the examples name: what scripts/serve.sh pushes through scripts/test-images.mjs.
    await ensureTestImages(docker);
    workDir = await mkdtemp(path.join(os.tmpdir(), "berth-readme-"));
    // The README's socket is <default work_dir>/berth.sock; the same layout under a temp work dir.
    berth = new BerthProcess(["serve", "--work_dir", workDir]);
    const serving = await berth.serving();
    agentId = serving.agent_id;
    socket = path.join(workDir, "berth.sock");
    assert.deepEqual(serving.listen, [`unix://${socket}`], "without --listen, berth serves on <work_dir>/berth.sock");
  });

  after(async () => {
    clients.forEach((c) => c.close());
    berth?.kill("SIGTERM");
    await berth?.exited;
    if (agentId) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agentId });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("the quick start's default work dir is the one the examples' socket lives in", async () => {
    const help = await runBerth(["serve", "--help"]);
    assert.match(help.stdout, new RegExp(`--work_dir <dir>[\\s\\S]*?default: "${DEFAULT_WORK_DIR}"`));
  });

  it("every command runs as written, in order, with the outcome the README describes", async () => {
    const commands = await readmeSectionCommands();
    const calls: GrpcurlCall[] = [];
    const registries = new Map<string, FileRegistry>();
    const reflection = new ReflectionClient(`unix://${socket}`, "v1");
    clients.push(reflection);

    async function registryFor(serviceName: string): Promise<FileRegistry> {
      const known = registries.get(serviceName);
      if (known) return known;
      const resolved = await resolveSymbol(reflection, serviceName);
      const [root] = [...resolved.files.values()];
      assert.ok(root, `reflection answered no file for ${serviceName}`);
      const registry = createFileRegistry(root, (name) => resolved.files.get(name));
      registries.set(serviceName, registry);
      return registry;
    }

    // What the README's prose promises, checked on the answers (only the fields it names).
    const answers: { call: GrpcurlCall; json: Json[] }[] = [];
    for (const words of commands) {
      if (words[0] === "cat") {
        assert.equal(words.length, 2, `cat of one file: ${words.join(" ")}`);
        const file = words[1]!;
        assert.ok(file.startsWith(`${DEFAULT_WORK_DIR}/`), `${file} lies under the work dir`);
        const text = await readFile(path.join(workDir, path.relative(DEFAULT_WORK_DIR, file)), "utf8");
        assert.equal(text, "hello\n", `${file} holds what the README says`);
        continue;
      }
      assert.equal(words[0], "grpcurl", `the README's API examples are grpcurl (and cat) lines; got: ${words.join(" ")}`);
      const call = parseGrpcurl(words);
      calls.push(call);
      assert.equal(call.socket, path.join(DEFAULT_WORK_DIR, "berth.sock"), `the socket npm run serve creates: ${call.line}`);

      if (call.target === "list") {
        const services = await reflection.listServices();
        for (const s of ["berth.v1.Containerizer", "grpc.health.v1.Health"]) assert.ok(services.includes(s), `list names ${s}: ${services.join(", ")}`);
        continue;
      }
      const [serviceName, methodName] = call.target.split("/") as [string, string];
      const registry = await registryFor(serviceName);
      const service = registry.getService(serviceName);
      assert.ok(service, `reflection resolves ${serviceName}`);
      const client = new DynamicClient(`unix://${socket}`, service);
      clients.push(client);
      const method = client.method(methodName);
      // grpcurl's -d is protobuf JSON; without -d it sends an empty message.
      const request = fromJson(method.input, call.body ?? {}, { registry }) as Message;
      const toJ = (m: Message) => toJson(method.output, m, { registry }) as Json;

      if (method.methodKind === "server_streaming") {
        answers.push({ call, json: (await serverStream(client, method, request, 120_000)).map(toJ) });
        continue;
      }
      assert.equal(method.methodKind, "unary", call.line);
      // Before a Destroy, the container is RUNNING, as it is by the time a person types the line.
      if (methodName === "Destroy" || methodName === "ExecSync") await untilRunning(client, registry, call.body as Json);
      answers.push({ call, json: [toJ(await client.unary(methodName, request, { deadline: Date.now() + 120_000 }))] });
    }

    const named = (target: string, id?: string) => {
      const found = answers.filter((a) => a.call.target === target && (id === undefined || JSON.stringify(a.call.body).includes(`"${id}"`)));
      assert.equal(found.length, 1, `exactly one README example calls ${target}${id ? ` for ${id}` : ""}`);
      return found[0]!.json;
    };
    assert.deepEqual(named("grpc.health.v1.Health/Check"), [{ status: "SERVING" }]);
    assert.equal(named("berth.v1.Containerizer/Launch", "c1")[0]!.result, "LAUNCH_RESULT_LAUNCHED");
    assert.equal(named("berth.v1.Containerizer/Launch", "c2")[0]!.result, "LAUNCH_RESULT_LAUNCHED");

    const watched = named("berth.v1.Containerizer/Watch", "c1");
    assert.ok(watched[0]!.event.snapshot, "Watch starts with the snapshot");
    const states = watched.filter((r) => r.event.stateChanged).map((r) => r.event.stateChanged.state);
    assert.ok(states.includes("STATE_RUNNING"), `Watch shows RUNNING: ${states.join(", ")}`);
    const last = watched.at(-1)!.event;
    assert.equal(last.termination?.containerTermination?.state, "TASK_FINISHED", `Watch ends after the termination: ${JSON.stringify(last)}`);

    const logged = named("berth.v1.Containerizer/Logs", "c1");
    assert.deepEqual(logged.map((r) => [r.stream, Buffer.from(r.data, "base64").toString()]), [["LOG_STREAM_STDOUT", "hello\n"]], JSON.stringify(logged));

    const waited = named("berth.v1.Containerizer/Wait", "c1")[0]!.termination;
    assert.equal(waited.containerTermination.state, "TASK_FINISHED", JSON.stringify(waited));
    assert.equal(waited.exitCode, 0, JSON.stringify(waited));

    const listed = named("berth.v1.Containerizer/Containers")[0]!.containers as Json[];
    assert.ok(listed.some((c) => c.containerId?.value === "c2"), `Containers lists c2: ${JSON.stringify(listed)}`);

    const execd = named("berth.v1.Containerizer/ExecSync", "c2")[0]!;
    assert.equal(execd.exitCode, 3, JSON.stringify(execd));
    assert.equal(Buffer.from(execd.stdout, "base64").toString(), "hello\n", JSON.stringify(execd));

    const destroyed = named("berth.v1.Containerizer/Destroy", "c2")[0]!.termination;
    assert.equal(destroyed.containerTermination.state, "TASK_KILLED", JSON.stringify(destroyed));
  });
});

/** Waits, through a Watch of the same dynamic client, until the container the request names is RUNNING. */
async function untilRunning(client: DynamicClient, registry: FileRegistry, body: Json): Promise<void> {
  const method = client.method("Watch");
  const request = fromJson(method.input, { container_ids: [body.container_id] }, { registry }) as Message;
  const call = client.raw.makeServerStreamRequest(
    `/${client.service.typeName}/Watch`,
    (value: Message) => Buffer.from(toBinary(method.input, value)),
    (bytes: Buffer) => fromBinary(method.output, bytes) as Message,
    request,
    new Metadata(),
    { deadline: Date.now() + 120_000 },
  );
  await new Promise<void>((resolve, reject) => {
    call.on("data", (m: Message) => {
      const event = (toJson(method.output, m, { registry }) as Json).event;
      if (event?.stateChanged?.state === "STATE_RUNNING") {
        resolve();
        call.cancel();
      } else if (event?.termination) {
        reject(new Error(`${JSON.stringify(body.container_id)} terminated before RUNNING: ${JSON.stringify(event)}`));
      }
    });
    call.on("error", (err: ServiceError) => reject(new Error(`Watch before Destroy failed: ${err.code} ${err.details}`)));
    call.on("end", () => reject(new Error(`Watch of ${JSON.stringify(body.container_id)} ended before RUNNING`)));
  });
}
