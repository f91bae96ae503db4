import assert from "node:assert/strict";
import { create, createFileRegistry, fromJson, toJson, type FileRegistry } from "@bufbuild/protobuf";
import { DynamicClient } from "../harness/reflection-dynamic-client.js";
import { ReflectionClient, resolveSymbol } from "../harness/reflection-client.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

const HEALTH = "grpc.health.v1.Health";

describe("grpc.health.v1 through server reflection only (the README's grpcurl Health/Check)", function () {
  this.timeout(60_000);
  let t: TestBerth;
  const clients: { close(): void }[] = [];

  before(async () => {
    t = await startTestBerth();
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await t?.close();
  });

  async function healthRegistry(version: "v1" | "v1alpha"): Promise<FileRegistry> {
    const reflection = new ReflectionClient(t.berth.addresses[0]!, version);
    clients.push(reflection);
    assert.ok((await reflection.listServices()).includes(HEALTH), `list_services names ${HEALTH}`);
    const resolved = await resolveSymbol(reflection, HEALTH);
    const [first] = [...resolved.files.values()];
    assert.ok(first, `reflection answered no file for ${HEALTH}`);
    // protobuf-es builds the registry as strictly as grpcurl does (map entries, qualified names).
    return createFileRegistry(first, (name) => resolved.files.get(name));
  }

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: Health resolves by symbol, and Check answers SERVING for the server and for berth.v1.Containerizer`, async () => {
      const registry = await healthRegistry(version);
      const service = registry.getService(HEALTH);
      assert.ok(service, `the reflected files declare ${HEALTH}`);
      assert.deepEqual(service.methods.map((m) => `${m.name}:${m.methodKind}`), ["Check:unary", "Watch:server_streaming", "List:unary"]);
      const client = new DynamicClient(t.berth.addresses[0]!, service);
      clients.push(client);
      const check = client.method("Check");
      for (const name of ["", "berth.v1.Containerizer"]) {
        // The README's request body: -d '{"service": "…"}'
        const answer = await client.unary("Check", fromJson(check.input, { service: name }, { registry }));
        assert.deepEqual(toJson(check.output, answer, { registry }), { status: "SERVING" }, `Check '${name}'`);
      }
      const list = await client.unary("List", create(client.method("List").input));
      const statuses = (toJson(client.method("List").output, list, { registry }) as { statuses?: Record<string, { status: string }> }).statuses;
      assert.equal(statuses?.["berth.v1.Containerizer"]?.status, "SERVING", JSON.stringify(statuses));
    });
  }
});
