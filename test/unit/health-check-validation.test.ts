// resolveHealthCheck: Mesos' defaults, what each check type runs, and every refusal naming the
// field and the value.
import { strict as assert } from "node:assert";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Environment_Variable_Type, HealthCheck_Type, HealthCheckSchema, NetworkInfo_Protocol } from "../../src/gen/mesos/v1/mesos_pb.js";
import { HealthCheckInvalid, resolveHealthCheck, statusIsHealthy } from "../../src/health/health-check.js";

type Init = MessageInitShape<typeof HealthCheckSchema>;

const resolve = (init: Init) => resolveHealthCheck(create(HealthCheckSchema, init));

function refuses(init: Init, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    resolve(init);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HealthCheckInvalid, `expected HealthCheckInvalid, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
}

describe("resolveHealthCheck", () => {
  it("applies Mesos' defaults: delay 15 s, interval 10 s, timeout 20 s, 3 failures, grace 10 s", () => {
    const plan = resolve({ type: HealthCheck_Type.TCP, tcp: { port: 8080 } });
    assert.deepEqual(plan.timing, { delayMs: 15_000, intervalMs: 10_000, timeoutMs: 20_000, consecutiveFailures: 3, gracePeriodMs: 10_000 });
    assert.deepEqual(plan.probe, { type: "TCP", host: "127.0.0.1", port: 8080 });
  });

  it("keeps fractional seconds", () => {
    const plan = resolve({ type: HealthCheck_Type.TCP, tcp: { port: 1 }, delaySeconds: 0.05, intervalSeconds: 0.125, timeoutSeconds: 0.5, gracePeriodSeconds: 0 });
    assert.deepEqual(plan.timing, { delayMs: 50, intervalMs: 125, timeoutMs: 500, consecutiveFailures: 3, gracePeriodMs: 0 });
  });

  it("runs a shell COMMAND as /bin/sh -c value, and shell=false as value then arguments, with the check's environment", () => {
    const shell = resolve({
      type: HealthCheck_Type.COMMAND,
      command: { value: "test -f /tmp/ok", environment: { variables: [{ name: "A", value: "1" }, { name: "A", value: "2" }] } },
    });
    assert.deepEqual(shell.probe, { type: "COMMAND", argv: ["/bin/sh", "-c", "test -f /tmp/ok"], env: { A: "2" }, display: "test -f /tmp/ok" });
    const exec = resolve({ type: HealthCheck_Type.COMMAND, command: { shell: false, value: "test", arguments: ["-f", "/tmp/ok"] } });
    assert.deepEqual(exec.probe, { type: "COMMAND", argv: ["test", "-f", "/tmp/ok"], env: {}, display: "test -f /tmp/ok" });
  });

  it("probes HTTP on the container's loopback: http by default, path '/' by default, IPv6 on ::1, https supported", () => {
    assert.deepEqual(resolve({ type: HealthCheck_Type.HTTP, http: { port: 80 } }).probe, { type: "HTTP", https: false, host: "127.0.0.1", port: 80, path: "/", statuses: [] });
    assert.deepEqual(resolve({ type: HealthCheck_Type.HTTP, http: { port: 443, scheme: "https", path: "/health?x=1", protocol: NetworkInfo_Protocol.IPv6, statuses: [200, 204] } }).probe, {
      type: "HTTP",
      https: true,
      host: "::1",
      port: 443,
      path: "/health?x=1",
      statuses: [200, 204],
    });
  });

  it("refuses a type that is UNKNOWN or unset, naming what is set", () => {
    refuses({}, /task_info\.health_check\.type \(unset\) is not a check type/, /COMMAND, HTTP or TCP/);
    refuses({ type: HealthCheck_Type.UNKNOWN, http: { port: 80 } }, /type UNKNOWN/, /task_info\.health_check\.http is set/);
    refuses({ type: 7 as HealthCheck_Type }, /type 7 is not a check type/);
  });

  it("refuses a type whose field is missing, or another kind of check set beside it", () => {
    refuses({ type: HealthCheck_Type.HTTP, tcp: { port: 80 } }, /type is HTTP but task_info\.health_check\.http is not set/);
    refuses({ type: HealthCheck_Type.COMMAND }, /type is COMMAND but task_info\.health_check\.command is not set/);
    refuses({ type: HealthCheck_Type.TCP, tcp: { port: 80 }, http: { port: 80 } }, /type is TCP but task_info\.health_check\.http is set too/);
  });

  it("refuses negative, NaN and infinite durations", () => {
    const tcp = { type: HealthCheck_Type.TCP, tcp: { port: 80 } };
    refuses({ ...tcp, delaySeconds: -1 }, /task_info\.health_check\.delay_seconds -1 must be a finite number of seconds ≥ 0/);
    refuses({ ...tcp, intervalSeconds: Number.NaN }, /interval_seconds NaN/);
    refuses({ ...tcp, timeoutSeconds: Number.POSITIVE_INFINITY }, /timeout_seconds Infinity/);
    refuses({ ...tcp, gracePeriodSeconds: -0.5 }, /grace_period_seconds -0\.5/);
  });

  it("refuses ports outside 1-65535", () => {
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 0 } }, /task_info\.health_check\.http\.port 0 is not a port \(1-65535\)/);
    refuses({ type: HealthCheck_Type.TCP, tcp: { port: 65536 } }, /task_info\.health_check\.tcp\.port 65536/);
  });

  it("refuses HTTP schemes, paths and statuses it cannot use", () => {
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 80, scheme: "ftp" } }, /http\.scheme 'ftp' is not supported/);
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 80, scheme: "" } }, /http\.scheme '' is not supported/);
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 80, path: "health" } }, /http\.path 'health' must start with '\/'/);
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 80, path: "/a b" } }, /http\.path '\/a b' contains whitespace/);
    refuses({ type: HealthCheck_Type.HTTP, http: { port: 80, statuses: [200, 700] } }, /http\.statuses\[1\] 700 is not an HTTP status/);
  });

  it("refuses COMMAND fields a check inside the running container cannot honour", () => {
    const cmd = (command: NonNullable<Init["command"]>) => ({ type: HealthCheck_Type.COMMAND, command });
    refuses(cmd({ value: "true", uris: [{ value: "http://x/y" }] }), /command\.uris has 1 entries/);
    refuses(cmd({ value: "true", user: "nobody" }), /command\.user 'nobody' is set/);
    refuses(cmd({ value: "" }), /command\.value is empty but task_info\.health_check\.command\.shell is true/);
    refuses(cmd({ value: "true", arguments: ["x"] }), /command\.arguments has 1 entries but .*shell is true/);
    refuses(cmd({ shell: false, value: "" }), /command\.value is empty: with shell=false/);
    refuses(cmd({ value: "a\0b" }), /command\.value contains a NUL/);
    refuses(cmd({ value: "true", environment: { variables: [{ name: "S", type: Environment_Variable_Type.SECRET }] } }), /environment\.variables\[0\] \('S'\) is a SECRET/);
    refuses(cmd({ value: "true", environment: { variables: [{ name: "A=B", value: "1" }] } }), /environment\.variables\[0\]\.name 'A=B'/);
  });
});

describe("statusIsHealthy", () => {
  it("takes 200-399 without statuses (as Mesos), exactly the listed ones with", () => {
    assert.deepEqual([199, 200, 302, 399, 400, 503].map((s) => statusIsHealthy(s, [])), [false, true, true, true, false, false]);
    assert.deepEqual([200, 204, 503].map((s) => statusIsHealthy(s, [204, 503])), [false, true, true]);
  });
});
