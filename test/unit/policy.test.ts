// The operator policy: admit() is the one decision over a resolved launch, pure and fast, so every
// rule is tried here with its refusal (rule, field, value) and with the policy key that opens it.
import { strict as assert } from "node:assert";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import fc from "fast-check";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import {
  CapabilityInfo_Capability,
  CommandInfoSchema,
  ContainerInfoSchema,
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  LinuxInfo_IpcMode,
  Volume_Mode,
  Volume_Source_Type,
  type ContainerInfo,
  type ContainerInfo_DockerInfo,
  type VolumeSchema,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import { buildCreateSpec } from "../../src/containerizer/create-spec.js";
import { parseDockerSize } from "../../src/containerizer/docker-parameters.js";
import { InvalidRequest, PermissionDenied, ResourceExhausted } from "../../src/containerizer/errors.js";
import { resolveLaunchSpec, type LaunchSpec } from "../../src/containerizer/launch-spec.js";
import { admissionPaths, admit, hostPathRequests, type AdmissionContext } from "../../src/policy/admit.js";
import { checkLaunchLimits, checkLiveContainers, DEFAULT_LAUNCH_LIMITS } from "../../src/policy/limits.js";
import { loadPolicy, parsePolicy, PolicyInvalid } from "../../src/policy/load-policy.js";
import { effectivePolicy } from "../../src/policy/startup-policy.js";
import { DOCKER_DEFAULT_CAPABILITIES, defaultPolicy, registryOf, type Policy } from "../../src/policy/policy.js";
import { realPathOf, resolvePaths } from "../../src/policy/resolve-paths.js";

type ContainerInit = Exclude<MessageInitShape<typeof ContainerInfoSchema>, ContainerInfo>;
type DockerInit = Exclude<NonNullable<ContainerInit["docker"]>, ContainerInfo_DockerInfo>;
type CommandInit = MessageInitShape<typeof CommandInfoSchema>;
type VolumeInit = MessageInitShape<typeof VolumeSchema>;

interface Launch {
  container?: Omit<ContainerInit, "docker"> & { docker?: Partial<DockerInit> };
  command?: CommandInit;
  user?: string;
  directory?: string;
  env?: Record<string, string>;
}

function spec(l: Launch = {}): LaunchSpec {
  const config = create(ContainerConfigSchema, {
    commandInfo: l.command ?? { shell: true, value: "echo hi" },
    containerInfo: { type: ContainerInfo_Type.DOCKER, ...l.container, docker: { image: "busybox:1.36", ...l.container?.docker } },
    user: l.user,
    directory: l.directory ?? "",
  });
  return resolveLaunchSpec("c1", config, l.env ?? {});
}

const FACTS = { workDir: "/var/lib/berth", sandboxesDir: "/var/lib/berth/sandboxes", engineSockets: ["/var/run/docker.sock", "/run/docker.sock"] };
/** The host's layout as admission sees it: /var/run is a link to /run (as on Debian). */
const HOST_LINKS: Record<string, string> = { "/var/run": "/run" };

/** Real paths as if resolved on a host with `links` (prefix → target) and everything else plain. */
function fakeResolve(paths: string[], links: Record<string, string | null>): Map<string, string | null> {
  const all = { ...HOST_LINKS, ...links };
  return new Map(
    paths.map((p) => {
      // The longest linked prefix wins.
      const hit = Object.keys(all)
        .filter((k) => p === k || p.startsWith(`${k}/`))
        .sort((a, b) => b.length - a.length)[0];
      if (hit === undefined) return [p, p];
      const target = all[hit];
      return [p, target === null ? null : target + p.slice(hit.length)];
    }),
  );
}

function decide(l: Launch, policy: Partial<Policy> = {}, links: Record<string, string | null> = {}, facts = FACTS): void {
  const s = spec(l);
  const p = { ...defaultPolicy(), ...policy };
  const ctx: AdmissionContext = { ...facts, resolved: fakeResolve(admissionPaths(s, p, facts), links) };
  admit(s, p, ctx);
}

/** Asserts a PermissionDenied with exactly this rule, field and value (and the message naming them). */
function refused(l: Launch, policy: Partial<Policy>, expect: { rule: string; field: string; value: string; detail?: RegExp }, links: Record<string, string | null> = {}): void {
  let caught: unknown;
  try {
    decide(l, policy, links);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PermissionDenied, `expected PermissionDenied, got ${String(caught)}`);
  assert.equal(caught.rule, expect.rule);
  assert.equal(caught.field, expect.field);
  assert.equal(caught.value, expect.value);
  assert.ok(caught.message.includes(expect.rule) && caught.message.includes(expect.field) && caught.message.includes(JSON.stringify(expect.value)), caught.message);
  if (expect.detail) assert.match(caught.message, expect.detail);
}

const hostPath = (p: string, containerPath = "/h"): VolumeInit => ({ containerPath, mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: p } } });
const volumes = (...v: VolumeInit[]): Launch => ({ container: { volumes: v } });
const caps = (kind: "effectiveCapabilities" | "boundingCapabilities" | "capabilityInfo", ...c: CapabilityInfo_Capability[]): Launch => ({ container: { linuxInfo: { [kind]: { capabilities: c } } } });
const uri = (value: string): Launch => ({ command: { shell: true, value: "true", uris: [{ value, outputFile: "f" }] } });

describe("operator policy", () => {
  describe("defaults", () => {
    it("admit a plain launch: any registry, network HOST, no user, Berth's own sandbox", () => {
      decide({});
      decide({ container: { docker: { network: ContainerInfo_DockerInfo_Network.HOST } } });
      decide({ user: "root" });
    });

    it("are the issue's table", () => {
      const d = defaultPolicy();
      assert.deepEqual(d, {
        sandboxRoots: [],
        allowPrivileged: false,
        allowedCapabilities: [],
        hostPathPrefixes: [],
        dockerVolumes: { allowedDrivers: ["local"], allowDriverOptions: false },
        allowHostIpc: false,
        allowHostPid: false,
        fileUriPrefixes: [],
        fetch: { allowLoopback: false, denyPrivateNetworks: false },
        allowedRegistries: undefined,
        allowHostNetwork: true,
        requireNonRootUser: false,
        allowUnconfinedSeccomp: false,
        allowUnconfinedApparmor: false,
        allowSelinuxLabelOptions: false,
        allowedDevices: [],
        allowOomKillDisable: false,
        allowNegativeOomScoreAdj: false,
        allowedLogDrivers: ["json-file", "local"],
      });
    });
  });

  describe("container_config.directory", () => {
    const field = "container_config.directory";
    it("may be empty or lie under <work_dir>/sandboxes", () => {
      decide({ directory: "" });
      decide({ directory: "/var/lib/berth/sandboxes/c1" });
      decide({ directory: "/var/lib/berth/sandboxes/fw/run/c1/" });
    });
    it("is refused anywhere else, naming the rule, field and value", () => {
      for (const dir of ["/tmp/x", "/etc/cron.d", "/root/.ssh", "/var/lib/berth/sandboxes", "/var/lib/berth/sandboxes-evil/x", "/var/lib/berth/meta/x", "/var/lib/berth"]) {
        refused({ directory: dir }, {}, { rule: "sandbox_roots", field, value: dir, detail: /must lie under \/var\/lib\/berth\/sandboxes/ });
      }
    });
    it("is refused when a link inside the sandboxes folder leads out of it", () => {
      refused({ directory: "/var/lib/berth/sandboxes/link/cron.d" }, {}, { rule: "sandbox_roots", field, value: "/var/lib/berth/sandboxes/link/cron.d", detail: /resolves to \/etc\/cron\.d/ }, { "/var/lib/berth/sandboxes/link": "/etc" });
    });
    it("is refused when its real path cannot be resolved", () => {
      refused({ directory: "/var/lib/berth/sandboxes/loop/x" }, {}, { rule: "sandbox_roots", field, value: "/var/lib/berth/sandboxes/loop/x", detail: /cannot be resolved/ }, { "/var/lib/berth/sandboxes/loop": null });
    });
    it("sandbox_roots opens more folders, but never one holding the engine socket or the work dir", () => {
      decide({ directory: "/srv/sandboxes/c1" }, { sandboxRoots: ["/srv/sandboxes"] });
      refused({ directory: "/srv/sandboxes" }, { sandboxRoots: ["/srv/sandboxes"] }, { rule: "sandbox_roots", field, value: "/srv/sandboxes" });
      refused({ directory: "/var/run" }, { sandboxRoots: ["/"] }, { rule: "engine_socket", field, value: "/var/run" });
      refused({ directory: "/var/lib" }, { sandboxRoots: ["/"] }, { rule: "work_dir", field, value: "/var/lib" });
    });
    it("a work dir that is itself a link is compared by its real path too", () => {
      const facts = { ...FACTS, workDir: "/data/berth", sandboxesDir: "/data/berth/sandboxes" };
      const s = spec({ directory: "/mnt/disk/berth/sandboxes/c1" });
      const p = defaultPolicy();
      admit(s, p, { ...facts, resolved: fakeResolve(admissionPaths(s, p, facts), { "/data": "/mnt/disk" }) });
    });
  });

  describe("privileged", () => {
    it("is refused unless allow_privileged", () => {
      refused({ container: { docker: { privileged: true } } }, {}, { rule: "allow_privileged", field: "container_info.docker.privileged", value: "true" });
      decide({ container: { docker: { privileged: true } } }, { allowPrivileged: true });
      decide({ container: { docker: { privileged: false } } });
    });
  });

  describe("capabilities", () => {
    it("Docker's default set may be asked for in every set", () => {
      const all = DOCKER_DEFAULT_CAPABILITIES.map((c) => CapabilityInfo_Capability[c as keyof typeof CapabilityInfo_Capability]);
      for (const kind of ["effectiveCapabilities", "boundingCapabilities", "capabilityInfo"] as const) decide(caps(kind, ...all));
    });
    it("anything beyond is refused in effective, bounding and capability_info, naming the index", () => {
      refused(caps("effectiveCapabilities", CapabilityInfo_Capability.SYS_ADMIN), {}, { rule: "allowed_capabilities", field: "container_info.linux_info.effective_capabilities.capabilities[0]", value: "SYS_ADMIN" });
      refused(caps("boundingCapabilities", CapabilityInfo_Capability.CHOWN, CapabilityInfo_Capability.NET_ADMIN), {}, { rule: "allowed_capabilities", field: "container_info.linux_info.bounding_capabilities.capabilities[1]", value: "NET_ADMIN" });
      refused(caps("capabilityInfo", CapabilityInfo_Capability.SYS_PTRACE), {}, { rule: "allowed_capabilities", field: "container_info.linux_info.capability_info.capabilities[0]", value: "SYS_PTRACE" });
      // A set create-spec would not use (effective wins) is checked all the same.
      refused({ container: { linuxInfo: { effectiveCapabilities: { capabilities: [CapabilityInfo_Capability.KILL] }, capabilityInfo: { capabilities: [CapabilityInfo_Capability.SYS_MODULE] } } } }, {}, { rule: "allowed_capabilities", field: "container_info.linux_info.capability_info.capabilities[0]", value: "SYS_MODULE" });
    });
    it("allowed_capabilities opens exactly the listed ones", () => {
      decide(caps("effectiveCapabilities", CapabilityInfo_Capability.SYS_ADMIN, CapabilityInfo_Capability.CHOWN), { allowedCapabilities: ["SYS_ADMIN"] });
      refused(caps("effectiveCapabilities", CapabilityInfo_Capability.SYS_ADMIN, CapabilityInfo_Capability.NET_ADMIN), { allowedCapabilities: ["SYS_ADMIN"] }, { rule: "allowed_capabilities", field: "container_info.linux_info.effective_capabilities.capabilities[1]", value: "NET_ADMIN" });
    });
  });

  describe("host paths", () => {
    it("HOST_PATH and absolute legacy host_path are refused without a prefix; sandbox-relative ones are not host paths", () => {
      refused(volumes(hostPath("/srv/data")), {}, { rule: "host_path_prefixes", field: "container_info.volumes[0].source.host_path.path", value: "/srv/data", detail: /unless the policy lists a prefix/ });
      refused(volumes({ containerPath: "/a", hostPath: "rel", mode: Volume_Mode.RW }, { containerPath: "/b", hostPath: "/srv/data", mode: Volume_Mode.RO }), {}, { rule: "host_path_prefixes", field: "container_info.volumes[1].host_path", value: "/srv/data" });
      decide(volumes({ containerPath: "/a", hostPath: "work", mode: Volume_Mode.RW }));
    });
    it("a prefix opens the paths under it, compared after normalisation and by real path", () => {
      const policy = { hostPathPrefixes: ["/srv"] };
      decide(volumes(hostPath("/srv")), policy);
      decide(volumes(hostPath("/srv/data//x/")), policy);
      refused(volumes(hostPath("/srvx/data")), policy, { rule: "host_path_prefixes", field: "container_info.volumes[0].source.host_path.path", value: "/srvx/data" });
      refused(volumes(hostPath("/srv/link/shadow")), policy, { rule: "host_path_prefixes", field: "container_info.volumes[0].source.host_path.path", value: "/srv/link/shadow", detail: /resolves to \/etc\/shadow/ }, { "/srv/link": "/etc" });
      // A prefix that is itself a link matches paths written through it and their real paths.
      decide(volumes(hostPath("/data/x")), { hostPathPrefixes: ["/data"] }, { "/data": "/mnt/disk" });
    });
    it("the engine socket, and any folder holding it, is never mountable, whatever the prefixes", () => {
      const everything = { hostPathPrefixes: ["/"] };
      for (const p of ["/var/run/docker.sock", "/run/docker.sock", "/", "/var/run", "/run", "/var"]) {
        refused(volumes(hostPath(p)), everything, { rule: "engine_socket", field: "container_info.volumes[0].source.host_path.path", value: p, detail: /never mountable/ });
      }
      refused(volumes({ containerPath: "/s", hostPath: "/var/run/docker.sock", mode: Volume_Mode.RW }), {}, { rule: "engine_socket", field: "container_info.volumes[0].host_path", value: "/var/run/docker.sock" });
      // Through a link to it.
      refused(volumes(hostPath("/srv/sock")), { hostPathPrefixes: ["/srv"] }, { rule: "engine_socket", field: "container_info.volumes[0].source.host_path.path", value: "/srv/sock" }, { "/srv/sock": "/run/docker.sock" });
      // The configured --docker_socket too.
      const facts = { ...FACTS, engineSockets: [...FACTS.engineSockets, "/custom/engine.sock"] };
      const s = spec(volumes(hostPath("/custom")));
      const p = { ...defaultPolicy(), hostPathPrefixes: ["/custom"] };
      assert.throws(() => admit(s, p, { ...facts, resolved: fakeResolve(admissionPaths(s, p, facts), {}) }), (e: unknown) => e instanceof PermissionDenied && e.rule === "engine_socket");
      decide(volumes(hostPath("/var/lib/data")), { hostPathPrefixes: ["/var"] });
    });
    it("the work dir (sandboxes, checkpoints) is never mountable, nor anything inside it or holding it", () => {
      for (const p of ["/var/lib/berth/meta", "/var/lib/berth/sandboxes/other", "/var/lib/berth", "/var/lib"]) {
        refused(volumes(hostPath(p)), { hostPathPrefixes: ["/var/lib"] }, { rule: "work_dir", field: "container_info.volumes[0].source.host_path.path", value: p });
      }
    });
    it("a legacy host_path beside a source is ignored by create-spec, and so by admission", () => {
      decide(volumes({ containerPath: "/d", hostPath: "/", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "v1" } } }));
    });
  });

  describe("docker volumes", () => {
    const dv = (driver: string, options: Array<{ key: string; value: string }> = []): Launch =>
      volumes({ containerPath: "/d", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "v1", driver, driverOptions: { parameter: options } } } });
    it("driver local (or none) without options is allowed", () => {
      decide(dv(""));
      decide(dv("local"));
    });
    it("other drivers and any driver option need the policy", () => {
      refused(dv("nfs"), {}, { rule: "docker_volumes.allowed_drivers", field: "container_info.volumes[0].source.docker_volume.driver", value: "nfs" });
      refused(dv("local", [{ key: "o", value: "bind" }, { key: "device", value: "/" }]), {}, { rule: "docker_volumes.allow_driver_options", field: "container_info.volumes[0].source.docker_volume.driver_options.parameter[0]", value: "o=bind" });
      decide(dv("nfs", [{ key: "o", value: "addr=x" }]), { dockerVolumes: { allowedDrivers: ["local", "nfs"], allowDriverOptions: true } });
      refused(dv(""), { dockerVolumes: { allowedDrivers: [], allowDriverOptions: false } }, { rule: "docker_volumes.allowed_drivers", field: "container_info.volumes[0].source.docker_volume.driver", value: "local" });
    });
  });

  describe("host namespaces", () => {
    it("ipc_mode SHARE_PARENT needs allow_host_ipc", () => {
      refused({ container: { linuxInfo: { ipcMode: LinuxInfo_IpcMode.SHARE_PARENT } } }, {}, { rule: "allow_host_ipc", field: "container_info.linux_info.ipc_mode", value: "SHARE_PARENT" });
      decide({ container: { linuxInfo: { ipcMode: LinuxInfo_IpcMode.SHARE_PARENT } } }, { allowHostIpc: true });
      decide({ container: { linuxInfo: { ipcMode: LinuxInfo_IpcMode.PRIVATE } } });
    });
    it("share_pid_namespace needs allow_host_pid (and then reaches the engine as PidMode host)", () => {
      const l = { container: { linuxInfo: { sharePidNamespace: true } } };
      refused(l, {}, { rule: "allow_host_pid", field: "container_info.linux_info.share_pid_namespace", value: "true" });
      decide(l, { allowHostPid: true });
      assert.equal(buildCreateSpec(spec(l), { agentId: "a", hostSandbox: "/s", containerSandbox: "/mnt/mesos/sandbox" }).HostConfig.PidMode, "host");
    });
    it("network HOST is allowed unless allow_host_network is false (an unset network is HOST)", () => {
      decide({ container: { docker: { network: ContainerInfo_DockerInfo_Network.NONE } } }, { allowHostNetwork: false });
      refused({ container: { docker: { network: ContainerInfo_DockerInfo_Network.HOST } } }, { allowHostNetwork: false }, { rule: "allow_host_network", field: "container_info.docker.network", value: "HOST" });
      refused({}, { allowHostNetwork: false }, { rule: "allow_host_network", field: "container_info.docker.network", value: "HOST" });
    });
  });

  describe("URIs", () => {
    const field = "command_info.uris[0].value";
    it("file:// URIs and bare paths are refused without a prefix", () => {
      refused(uri("file:///root/secret"), {}, { rule: "file_uri_prefixes", field, value: "file:///root/secret", detail: /unless the policy lists a prefix/ });
      refused(uri("/etc/shadow"), {}, { rule: "file_uri_prefixes", field, value: "/etc/shadow" });
      refused(uri("file://localhost/etc/shadow"), {}, { rule: "file_uri_prefixes", field, value: "file://localhost/etc/shadow" });
    });
    it("file_uri_prefixes opens the files under them by real path", () => {
      const policy = { fileUriPrefixes: ["/srv/artifacts"] };
      decide(uri("file:///srv/artifacts/a.tgz"), policy);
      decide(uri("/srv/artifacts/x/../b.tgz"), policy);
      refused(uri("/srv/artifacts-evil/a"), policy, { rule: "file_uri_prefixes", field, value: "/srv/artifacts-evil/a" });
      refused(uri("/srv/artifacts/link"), policy, { rule: "file_uri_prefixes", field, value: "/srv/artifacts/link", detail: /resolves to \/root\/secret/ }, { "/srv/artifacts/link": "/root/secret" });
      refused(uri("/srv/artifacts/x/../../etc/passwd"), policy, { rule: "file_uri_prefixes", field, value: "/srv/artifacts/x/../../etc/passwd" });
    });
    it("Berth's own files are never fetched, whatever prefix opens them: the work dir (checkpoints, other sandboxes) and the fetcher cache, also through a link", () => {
      const everything = { fileUriPrefixes: ["/"] };
      for (const p of ["/var/lib/berth/meta/containers/c1.json", "/var/lib/berth/sandboxes/other/secret", "file:///var/lib/berth/agent_id"]) {
        refused(uri(p), everything, { rule: "work_dir", field, value: p, detail: /inside Berth's work dir/ });
      }
      refused(uri("/srv/a/link"), everything, { rule: "work_dir", field, value: "/srv/a/link", detail: /inside Berth's work dir/ }, { "/srv/a/link": "/var/lib/berth/meta/x" });
      decide(uri("/srv/a/file"), everything);
      const cache = { ...FACTS, fetcherCacheDir: "/cache/berth" };
      const s = spec(uri("/cache/berth/entry-1"));
      const policy = { ...defaultPolicy(), ...everything };
      assert.throws(
        () => admit(s, policy, { ...cache, resolved: fakeResolve(admissionPaths(s, policy, cache), {}) }),
        (e: unknown) => e instanceof PermissionDenied && e.rule === "fetcher_cache_dir" && e.field === field,
      );
    });
    it("the fetcher cache is never mountable, nor a folder holding it, also outside the work dir", () => {
      const cache = { ...FACTS, fetcherCacheDir: "/cache/berth" };
      const policy = { ...defaultPolicy(), hostPathPrefixes: ["/cache", "/"] };
      for (const p of ["/cache/berth", "/cache/berth/x", "/cache"]) {
        const s = spec(volumes(hostPath(p)));
        assert.throws(
          () => admit(s, policy, { ...cache, resolved: fakeResolve(admissionPaths(s, policy, cache), {}) }),
          (e: unknown) => e instanceof PermissionDenied && e.rule === "fetcher_cache_dir",
          p,
        );
      }
    });
    it("http(s) to loopback written as an address or 'localhost' is refused unless fetch.allow_loopback", () => {
      for (const u of ["http://127.0.0.1:8080/a", "https://127.1.2.3/a", "http://[::1]/a", "http://[::ffff:127.0.0.1]/a", "http://[::ffff:7f00:1]/a", "http://localhost/a", "http://LOCALHOST./a", "http://svc.localhost/a", "http://2130706433/a", "http://0x7f.1/a"]) {
        refused(uri(u), {}, { rule: "fetch.allow_loopback", field, value: u });
        decide(uri(u), { fetch: { allowLoopback: true, denyPrivateNetworks: false } });
      }
    });
    it("link-local and unspecified addresses are never fetched", () => {
      for (const u of ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]/a", "http://0.0.0.0/a", "http://[::ffff:169.254.169.254]/a"]) {
        refused(uri(u), { fetch: { allowLoopback: true, denyPrivateNetworks: false } }, { rule: "fetch.special_addresses", field, value: u });
      }
    });
    it("private ranges are allowed unless fetch.deny_private_networks; names are left to the fetcher's connect-time check", () => {
      decide(uri("http://10.1.2.3/a"));
      refused(uri("http://10.1.2.3/a"), { fetch: { allowLoopback: false, denyPrivateNetworks: true } }, { rule: "fetch.deny_private_networks", field, value: "http://10.1.2.3/a" });
      refused(uri("http://[fd00::1]/a"), { fetch: { allowLoopback: false, denyPrivateNetworks: true } }, { rule: "fetch.deny_private_networks", field, value: "http://[fd00::1]/a" });
      decide(uri("https://example.com/a.tgz"), { fetch: { allowLoopback: false, denyPrivateNetworks: true } });
      decide(uri("http://93.184.216.34/a"));
    });
    it("the index of the refused URI is named", () => {
      refused({ command: { shell: true, value: "true", uris: [{ value: "https://example.com/a" }, { value: "http://127.0.0.1/b" }] } }, {}, { rule: "fetch.allow_loopback", field: "command_info.uris[1].value", value: "http://127.0.0.1/b" });
    });
  });

  describe("images", () => {
    it("any registry by default; only the listed ones with allowed_registries", () => {
      decide({ container: { docker: { image: "evil.example.com/x:1" } } });
      const policy = { allowedRegistries: ["127.0.0.1:5000", "docker.io"] };
      decide({ container: { docker: { image: "127.0.0.1:5000/berth-test/busybox:1" } } }, policy);
      decide({ container: { docker: { image: "busybox:1.36" } } }, policy);
      decide({ container: { docker: { image: "index.docker.io/library/busybox" } } }, policy);
      refused({ container: { docker: { image: "evil.example.com/x:1" } } }, policy, { rule: "allowed_registries", field: "container_info.docker.image", value: "evil.example.com/x:1", detail: /registry 'evil\.example\.com'/ });
      refused({ container: { docker: { image: "127.0.0.1:5001/x" } } }, policy, { rule: "allowed_registries", field: "container_info.docker.image", value: "127.0.0.1:5001/x" });
    });
    it("registryOf reads references as Docker does", () => {
      assert.equal(registryOf("busybox"), "docker.io");
      assert.equal(registryOf("library/busybox:1"), "docker.io");
      assert.equal(registryOf("localhost/x"), "localhost");
      assert.equal(registryOf("Registry.Example.com:443/a/b@sha256:" + "a".repeat(64)), "registry.example.com:443");
      assert.equal(registryOf("registry-1.docker.io/library/busybox"), "docker.io");
    });
  });

  describe("user", () => {
    it("root is allowed by default", () => {
      decide({ user: "root" });
      decide({ user: "0:0" });
    });
    it("require_non_root_user refuses root, uid 0 and an unset user (the image's default may be root)", () => {
      const policy = { requireNonRootUser: true };
      for (const u of ["root", "0", "000", "0:1000", "root:wheel"]) refused({ user: u }, policy, { rule: "require_non_root_user", field: "container_config.user", value: u });
      refused({}, policy, { rule: "require_non_root_user", field: "container_config.user", value: "", detail: /image's default user/ });
      refused({ command: { shell: true, value: "x", user: "root" } }, policy, { rule: "require_non_root_user", field: "container_config.user", value: "root" });
      for (const u of ["1000", "nobody", "1000:0", "rooty"]) decide({ user: u }, policy);
    });
  });

  describe("seccomp and the volume driver", () => {
    it("linux_info.seccomp.unconfined needs allow_unconfined_seccomp; a named profile is the operator's own", () => {
      const l = { container: { linuxInfo: { seccomp: { unconfined: true } } } };
      refused(l, {}, { rule: "allow_unconfined_seccomp", field: "container_info.linux_info.seccomp.unconfined", value: "true" });
      decide(l, { allowUnconfinedSeccomp: true });
      decide({ container: { linuxInfo: { seccomp: { profileName: "strict" } } } });
    });
    it("docker.volume_driver goes through docker_volumes.allowed_drivers", () => {
      decide({ container: { docker: { volumeDriver: "local" } } });
      refused({ container: { docker: { volumeDriver: "convoy" } } }, {}, { rule: "docker_volumes.allowed_drivers", field: "container_info.docker.volume_driver", value: "convoy" });
      decide({ container: { docker: { volumeDriver: "convoy" } } }, { dockerVolumes: { allowedDrivers: ["local", "convoy"], allowDriverOptions: false } });
    });
  });

  describe("create-spec cannot bypass admission", () => {
    it("whatever Docker parameters the default policy admits, the create options hold nothing it forbids", () => {
      const keys = ["cap-add", "cap-drop", "security-opt", "sysctl", "device", "oom-kill-disable", "oom-score-adj", "log-driver", "log-opt", "volume-driver", "user", "privileged"];
      const values = ["SYS_ADMIN", "CHOWN", "ALL", "seccomp=unconfined", "apparmor=unconfined", "label=disable", "no-new-privileges", "kernel.panic=1", "kernel.shmmax=1", "net.ipv4.ip_forward=1", "/dev/sda", "/dev/fuse", "true", "false", "", "-500", "100", "syslog", "local", "none", "max-size=1g", "max-file=9", "nfs", "root", "1000"];
      const paramArb = fc.array(fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...values)), { maxLength: 4 });
      let admitted = 0;
      fc.assert(
        fc.property(paramArb, fc.constantFrom(ContainerInfo_DockerInfo_Network.HOST, ContainerInfo_DockerInfo_Network.NONE), (params, network) => {
          const l: Launch = { container: { docker: { network, parameters: params.map(([key, value]) => ({ key, value })) } } };
          let c;
          try {
            c = buildCreateSpec(spec(l), { agentId: "a", hostSandbox: "/var/lib/berth/sandboxes/c1", containerSandbox: "/mnt/mesos/sandbox" });
            decide(l, {});
          } catch (err) {
            assert.ok(err instanceof PermissionDenied || err instanceof InvalidRequest, String(err));
            return;
          }
          admitted += 1;
          const hc = c.HostConfig;
          for (const cap of hc.CapAdd ?? []) assert.ok(DOCKER_DEFAULT_CAPABILITIES.includes(cap.replace(/^CAP_/, "")), `added ${cap}`);
          assert.ok(!(hc.SecurityOpt ?? []).some((o) => /unconfined|^label=/.test(o)), `security opts ${hc.SecurityOpt}`);
          assert.equal(hc.Devices, undefined);
          assert.notEqual(hc.OomKillDisable, true);
          assert.ok((hc.OomScoreAdj ?? 0) >= 0);
          assert.ok(["json-file", "local"].includes(hc.LogConfig!.Type));
          assert.ok(parseDockerSize(hc.LogConfig!.Config!["max-size"]!)! * Number(hc.LogConfig!.Config!["max-file"]) <= 2 * 10 * 1024 * 1024, `log ${JSON.stringify(hc.LogConfig)}`);
          for (const name of Object.keys(hc.Sysctls ?? {})) assert.ok(name === "kernel.shmmax" || (name.startsWith("net.") && network !== ContainerInfo_DockerInfo_Network.HOST), `sysctl ${name}`);
          assert.ok(hc.VolumeDriver === undefined || hc.VolumeDriver === "local");
          assert.notEqual(hc.Privileged, true);
        }),
        { seed: 10, numRuns: 600 },
      );
      assert.ok(admitted > 50, `only ${admitted} launches were admitted: the property checked little`);
    });

    it("every bind mount from outside the sandbox is a host path admission checked", () => {
      const pathArb = fc.constantFrom("/", "/srv/a", "rel/x", "/var/run/docker.sock", "x", "/a/b/");
      const volumeArb = fc.oneof(
        pathArb.map((p): VolumeInit => ({ containerPath: "/c", hostPath: p, mode: Volume_Mode.RW })),
        pathArb.map((p): VolumeInit => hostPath(p.startsWith("/") ? p : `/${p}`)),
        pathArb.map((p): VolumeInit => ({ containerPath: "/c", mode: Volume_Mode.RW, hostPath: p, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { path: "s" } } })),
        pathArb.map((p): VolumeInit => ({ containerPath: "/c", mode: Volume_Mode.RW, hostPath: p, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "v1" } } })),
      );
      fc.assert(
        fc.property(fc.array(volumeArb, { maxLength: 5 }), (vols) => {
          const s = spec(volumes(...vols));
          const sandbox = "/var/lib/berth/sandboxes/c1";
          const checked = new Set(hostPathRequests(s).map((h) => path.normalize(h.path)));
          for (const m of buildCreateSpec(s, { agentId: "a", hostSandbox: sandbox, containerSandbox: "/mnt/mesos/sandbox" }).HostConfig.Mounts) {
            if (m.Type !== "bind" || m.Source === sandbox || m.Source.startsWith(`${sandbox}/`)) continue;
            assert.ok(checked.has(m.Source), `bind of ${m.Source} was not checked by admission`);
          }
        }),
        { seed: 8, numRuns: 300 },
      );
    });
  });

  describe("limits", () => {
    const limits = { ...DEFAULT_LAUNCH_LIMITS, maxEnvironmentEntries: 3, maxUris: 2, maxVolumes: 1, maxContainers: 2 };
    const exhausted = (run: () => void, flag: string) =>
      assert.throws(run, (e: unknown) => e instanceof ResourceExhausted && e.limit === flag && e.message.includes(flag));
    it("environment entries count the command's and the request's", () => {
      checkLaunchLimits(spec({ command: { shell: true, value: "x", environment: { variables: [{ name: "A", value: "1" }] } }, env: { B: "2", C: "3" } }), limits);
      exhausted(() => checkLaunchLimits(spec({ command: { shell: true, value: "x", environment: { variables: [{ name: "A", value: "1" }, { name: "D", value: "4" }] } }, env: { B: "2", C: "3" } }), limits), "--max_environment_entries");
    });
    it("URIs and volumes", () => {
      const u = (n: number) => ({ command: { shell: true, value: "x", uris: Array.from({ length: n }, (_, i) => ({ value: `https://example.com/${i}` })) } });
      checkLaunchLimits(spec(u(2)), limits);
      exhausted(() => checkLaunchLimits(spec(u(3)), limits), "--max_uris");
      const v = { containerPath: "/d", mode: Volume_Mode.RW };
      checkLaunchLimits(spec(volumes(v)), limits);
      exhausted(() => checkLaunchLimits(spec(volumes(v, v)), limits), "--max_volumes");
    });
    it("live containers", () => {
      checkLiveContainers(1, limits);
      exhausted(() => checkLiveContainers(2, limits), "--max_containers");
    });
  });

  describe("loading a policy file", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "berth-policy-"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    const invalid = (text: string, ...patterns: RegExp[]) => {
      let caught: unknown;
      try {
        parsePolicy(text, "/etc/berth/policy.yaml");
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof PolicyInvalid, `expected PolicyInvalid, got ${String(caught)}`);
      assert.match(caught.message, /--policy '\/etc\/berth\/policy\.yaml'/);
      assert.ok(!caught.message.includes("\n"), "one line");
      for (const p of patterns) assert.match(caught.message, p);
    };

    it("reads YAML and JSON, snake_case keys, normalising paths, capabilities and registries", () => {
      const yaml = parsePolicy(
        [
          "sandbox_roots: [/srv/sandboxes/]",
          "allow_privileged: true",
          "allowed_capabilities: [cap_sys_admin, NET_ADMIN, SYS_ADMIN]",
          "host_path_prefixes: [/srv//data]",
          "docker_volumes: {allowed_drivers: [local, nfs], allow_driver_options: true}",
          "allow_host_ipc: true",
          "allow_host_pid: true",
          "file_uri_prefixes: [/srv/artifacts]",
          "fetch: {allow_loopback: true, deny_private_networks: true}",
          "allowed_registries: [Registry.Example.com:5000, index.docker.io]",
          "allow_host_network: false",
          "require_non_root_user: true",
          "allow_unconfined_seccomp: true",
          "allow_unconfined_apparmor: true",
          "allow_selinux_label_options: true",
          "allowed_devices: [/dev/fuse, /dev//fuse, /dev/net/tun/]",
          "allow_oom_kill_disable: true",
          "allow_negative_oom_score_adj: true",
          "allowed_log_drivers: [json-file, syslog]",
        ].join("\n"),
        "p.yaml",
      );
      assert.deepEqual(yaml, {
        sandboxRoots: ["/srv/sandboxes"],
        allowPrivileged: true,
        allowedCapabilities: ["SYS_ADMIN", "NET_ADMIN"],
        hostPathPrefixes: ["/srv/data"],
        dockerVolumes: { allowedDrivers: ["local", "nfs"], allowDriverOptions: true },
        allowHostIpc: true,
        allowHostPid: true,
        fileUriPrefixes: ["/srv/artifacts"],
        fetch: { allowLoopback: true, denyPrivateNetworks: true },
        allowedRegistries: ["registry.example.com:5000", "docker.io"],
        allowHostNetwork: false,
        requireNonRootUser: true,
        allowUnconfinedSeccomp: true,
        allowUnconfinedApparmor: true,
        allowSelinuxLabelOptions: true,
        allowedDevices: ["/dev/fuse", "/dev/net/tun"],
        allowOomKillDisable: true,
        allowNegativeOomScoreAdj: true,
        allowedLogDrivers: ["json-file", "syslog"],
      });
      assert.deepEqual(parsePolicy('{"host_path_prefixes": ["/srv"], "allow_privileged": false}', "p.json"), { ...defaultPolicy(), hostPathPrefixes: ["/srv"] });
      assert.deepEqual(parsePolicy("", "empty.yaml"), defaultPolicy());
      assert.deepEqual(parsePolicy("# only comments\n", "c.yaml"), defaultPolicy());
    });

    it("refuses a bad key or value in one line naming the file and the key", () => {
      invalid("allow_priviledged: true", /key 'allow_priviledged' is not a policy key/);
      invalid("fetch:\n  allow_loopbak: true", /key 'fetch\.allow_loopbak' is not a policy key/);
      invalid("allow_privileged: yes please", /key 'allow_privileged' "yes please" expected boolean/);
      invalid("allowed_capabilities: [CHOWN, SYS_GODMODE]", /key 'allowed_capabilities\[1\]' "SYS_GODMODE" is not a Linux capability/);
      invalid("host_path_prefixes: [relative/path]", /key 'host_path_prefixes\[0\]' "relative\/path" is not an absolute path/);
      invalid("file_uri_prefixes: [/a/../b]", /key 'file_uri_prefixes\[0\]' "\/a\/\.\.\/b" contains '\.\.'/);
      invalid("allowed_registries: ['https://x']", /key 'allowed_registries\[0\]' "https:\/\/x" is not a registry/);
      invalid("allowed_devices: [/etc/passwd]", /key 'allowed_devices\[0\]' "\/etc\/passwd" is not a device path under \/dev/);
      invalid("allowed_log_drivers: [json-file, none]", /key 'allowed_log_drivers\[1\]' "none" is 'none', which keeps no output/);
      invalid("allow_unconfined_seccomp: 1", /key 'allow_unconfined_seccomp' 1 expected boolean/);
      invalid("docker_volumes: {allowed_drivers: local}", /key 'docker_volumes\.allowed_drivers' "local" expected array/);
      invalid("- a\n- b", /must be a mapping/);
      invalid("a: [", /neither valid YAML nor JSON/);
      invalid("allow_privileged: true\nallow_privileged: false", /neither valid YAML nor JSON/);
    });

    it("loadPolicy names an unreadable file; effectivePolicy opens loopback for --fetch_allow_loopback", async () => {
      await assert.rejects(loadPolicy(path.join(dir, "missing.yaml")), (e: unknown) => e instanceof PolicyInvalid && /missing\.yaml' cannot be read/.test(e.message));
      const file = path.join(dir, "p.yaml");
      await writeFile(file, "host_path_prefixes: [/srv]\n");
      assert.deepEqual((await effectivePolicy(file, true)).fetch, { allowLoopback: true, denyPrivateNetworks: false });
      assert.deepEqual((await effectivePolicy(undefined, false)), defaultPolicy());
    });

    it("examples/policy.yaml documents every key with its default", async () => {
      const text = await readFile(path.join(process.cwd(), "examples/policy.yaml"), "utf8");
      assert.deepEqual(parsePolicy(text, "examples/policy.yaml"), defaultPolicy());
      for (const key of ["sandbox_roots", "allow_privileged", "allowed_capabilities", "host_path_prefixes", "docker_volumes", "allowed_drivers", "allow_driver_options", "allow_host_ipc", "allow_host_pid", "file_uri_prefixes", "fetch", "allow_loopback", "deny_private_networks", "allowed_registries", "allow_host_network", "require_non_root_user"]) {
        assert.match(text, new RegExp(`^\\s*#?\\s*${key}:`, "m"), `${key} is documented`);
      }
    });
  });

  describe("real paths", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "berth-real-"));
      await mkdir(path.join(dir, "a/b"), { recursive: true });
      await writeFile(path.join(dir, "a/file"), "");
      await symlink(path.join(dir, "a"), path.join(dir, "abs"));
      await symlink("a/b", path.join(dir, "rel"));
      await symlink("/etc/nonexistent-berth", path.join(dir, "dangling"));
      await symlink("loop2", path.join(dir, "loop1"));
      await symlink("loop1", path.join(dir, "loop2"));
      await symlink("../..", path.join(dir, "a/b/up"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("resolves links, relative and absolute, also for paths that do not exist yet", async () => {
      const real = await realPathOf(dir);
      assert.ok(real !== null);
      assert.equal(await realPathOf(path.join(dir, "abs/b")), path.join(real, "a/b"));
      assert.equal(await realPathOf(path.join(dir, "rel/new/deeper")), path.join(real, "a/b/new/deeper"));
      assert.equal(await realPathOf(path.join(dir, "a/b/up/a")), path.join(real, "a"));
    });
    it("follows a dangling link (mkdir -p or a bind would), and refuses loops and files used as folders", async () => {
      assert.equal(await realPathOf(path.join(dir, "dangling/x")), "/etc/nonexistent-berth/x");
      assert.equal(await realPathOf(path.join(dir, "loop1/x")), null);
      assert.equal(await realPathOf(path.join(dir, "a/file/x")), null);
    });
    it("resolves each distinct path once", async () => {
      const m = await resolvePaths([dir, dir, path.join(dir, "abs")]);
      assert.equal(m.size, 2);
    });
  });
});
