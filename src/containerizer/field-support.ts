import { isFieldSet, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { quote } from "./container-id.js";
import { InvalidRequest } from "./errors.js";

/**
 * What Berth does with every field of the Mesos messages a launch carries — one table, so that no
 * field is accepted and silently dropped. A launch is checked against it by one generic pass
 * (refuseUnsupportedFields): a set field whose row says "refused" is INVALID_ARGUMENT naming its
 * path; the pass descends only into "honoured" fields, since a refused or informational field's
 * contents do not reach the engine. A field without a row is refused too (safe by default), and
 * test/unit/field-support.test.ts walks the generated descriptors so a field added to the protos
 * without a row fails the build's tests.
 */
export type Support = "honoured" | "refused" | "informational";

/** One row: what Berth does with a field (for "informational", why it has no effect, as in Mesos). */
export interface FieldRow {
  support: Support;
  what: string;
}

type Rows = Readonly<Record<string, FieldRow>>;

const honoured = (what: string): FieldRow => ({ support: "honoured", what });
const refused = (what: string): FieldRow => ({ support: "refused", what });
const informational = (what: string): FieldRow => ({ support: "informational", what });

const ID = honoured("reported back (TaskStatus) and validated as Mesos does");

/** Message full name → field name (as in the .proto) → row. */
export const FIELD_SUPPORT: Readonly<Record<string, Rows>> = {
  "mesos.slave.ContainerConfig": {
    executor_info: honoured("without a task_info, the executor's command, container and resources run (Mesos' executor-in-a-Docker-container case); its executor_id is reported in TaskStatus"),
    task_info: honoured("the task's command, container, resources, limits, kill policy and health check run; TaskStatus events carry its task_id"),
    command_info: honoured("the command run when neither task_info.command nor executor_info.command is given (with a task_info, Mesos puts its executor's command here, which Berth's own task runner replaces)"),
    container_info: honoured("the container run when neither task_info.container nor executor_info.container is given (same precedence as the command)"),
    resources: honoured("cpus → CPU shares (and a CFS quota with --cgroups_enable_cfs), mem → memory limit, disk → disk/du enforcement, ports → host ports port_mappings may use; the allocation role → MESOS_ALLOCATION_ROLE; take precedence over the task's and executor's resources"),
    limits: honoured("cpus limit → CFS quota (even without --cgroups_enable_cfs), mem limit → memory limit with the mem request as reservation; +Infinity → no cap; a limit needs its request and may not be below it; take precedence over task_info.limits"),
    directory: honoured("the sandbox (empty: Berth picks <work_dir>/sandboxes/<id>), within the policy's sandbox_roots"),
    ephemeral_volumes: informational("paths Mesos' provisioner makes writable in a MESOS container's image root; a Docker container's whole root file system is already a writable layer"),
    user: honoured("the container's user (before command_info.user), through the policy's require_non_root_user"),
    rootfs: refused("a root file system provisioned by the Mesos containerizer; Berth runs the Docker image itself"),
    docker: informational("the image manifest Mesos' provisioner read (not carried by Berth's proto); the engine reads the image's own"),
    appc: refused("an AppC image; Berth runs Docker images only"),
  },
  "mesos.v1.TaskInfo": {
    name: informational("a human-readable name for UIs; no effect on the container"),
    task_id: ID,
    agent_id: informational("the Mesos agent the master chose; Berth labels containers with its own --agent_id"),
    resources: honoured("used when container_config.resources is empty (as container_config.resources)"),
    executor: refused("a task with its own executor: Berth runs the task's command itself and has no executor to hand the task to (launch the executor with executor_info alone)"),
    command: honoured("the command run (before executor_info.command and command_info)"),
    container: honoured("the container run (before executor_info.container and container_info)"),
    health_check: honoured("COMMAND (engine exec), HTTP and TCP (from the container's network namespace) checks with Mesos' timing; health changes are TaskStatus events, consecutive failures kill the task"),
    check: refused("Mesos' general checks report a CheckStatusInfo, which Berth's TaskStatus does not carry; use health_check"),
    kill_policy: honoured("its grace_period is the SIGTERM → SIGKILL grace on Destroy (instead of --docker_stop_timeout)"),
    data: informational("opaque bytes Mesos hands to a custom executor; a Docker container has no executor to read them"),
    labels: informational("free-form metadata for frameworks and tools; Mesos' docker containerizer ignores them too"),
    discovery: informational("service discovery metadata read by external tools (Mesos-DNS and the like); no effect on the container"),
    max_completion_time: honoured("the task is killed once it has run this long and ends TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED (kept across restarts)"),
    limits: honoured("used when container_config.limits is empty (as container_config.limits)"),
  },
  "mesos.v1.ExecutorInfo": {
    type: informational("which executor a Mesos agent would start (DEFAULT or CUSTOM); Berth runs the executor's command in its container either way"),
    executor_id: ID,
    framework_id: informational("the framework owning the executor; Berth's TaskStatus has no field for it"),
    command: honoured("the command run when no task_info.command is given"),
    container: honoured("the container run when no task_info.container is given"),
    resources: honoured("added to task_info.resources when container_config.resources is empty"),
    name: informational("a human-readable name for UIs; no effect on the container"),
    source: informational("deprecated free-form tag for monitoring; no effect on the container"),
    data: informational("opaque bytes for the executor itself; the container reads them from its framework, not from Berth"),
    discovery: informational("service discovery metadata read by external tools; no effect on the container"),
    shutdown_grace_period: honoured("the SIGTERM → SIGKILL grace on Destroy when the task has no kill_policy"),
    labels: informational("free-form metadata for frameworks and tools; no effect on the container"),
  },
  "mesos.v1.TaskID": { value: ID },
  "mesos.v1.ExecutorID": { value: ID },
  "mesos.v1.KillPolicy": { grace_period: honoured("SIGTERM → SIGKILL grace on Destroy; a negative one is refused") },
  "mesos.v1.DurationInfo": { nanoseconds: honoured("the duration") },
  "mesos.v1.CommandInfo": {
    uris: honoured("fetched into the sandbox before the container starts (http, https, file within the policy)"),
    environment: honoured("the container's environment, in order (later entries win)"),
    shell: honoured("true (default): entrypoint /bin/sh -c value; false: value and arguments are handed to the image's entrypoint as its command"),
    value: honoured("the shell command, or (shell=false) the first word handed to the image's entrypoint"),
    arguments: honoured("with shell=false, handed to the image's entrypoint after value (without a value, they alone are the command: Mesos' Default_CMD_Args)"),
    user: honoured("the container's user when container_config.user is not set"),
  },
  "mesos.v1.CommandInfo.URI": {
    value: honoured("the URI fetched"),
    executable: honoured("the fetched file is made executable"),
    extract: honoured("archives (tar, tar.gz, zip) are extracted into the sandbox"),
    cache: honoured("fetched through the fetcher cache (--fetcher_cache_dir, LRU bounded by --fetcher_cache_size)"),
    output_file: honoured("the name (within the sandbox) the download is saved as"),
  },
  "mesos.v1.Environment": { variables: honoured("set in the container") },
  "mesos.v1.Environment.Variable": {
    name: honoured("the variable's name (no '=' or NUL)"),
    type: honoured("VALUE (or UNKNOWN) is set as given; SECRET is refused (Berth resolves no secrets)"),
    value: honoured("the variable's value"),
  },
  "mesos.v1.ContainerInfo": {
    type: honoured("DOCKER runs; MESOS answers NOT_SUPPORTED (Mesos' composing containerizer passes it on)"),
    volumes: honoured("mounted through the engine's Mounts API, within the policy"),
    hostname: honoured("the container's host name (not with network HOST)"),
    docker: honoured("the image and Docker settings"),
    mesos: refused("a MESOS container's image; Berth runs DOCKER containers, whose image is docker.image"),
    network_infos: honoured("with docker.network USER, the one entry's name is the engine network joined"),
    linux_info: honoured("capabilities, pid and ipc namespaces, /dev/shm size, seccomp"),
    rlimit_info: honoured("the engine's ulimits"),
    tty_info: honoured("the container gets a terminal (Tty)"),
  },
  "mesos.v1.ContainerInfo.DockerInfo": {
    image: honoured("pulled (within allowed_registries) and run"),
    network: honoured("HOST (default), BRIDGE, NONE or USER; HOST within the policy's allow_host_network"),
    port_mappings: honoured("published host ports (BRIDGE or USER networks), each host port inside the launch's ports resource"),
    privileged: honoured("a privileged container, when the policy's allow_privileged opens it"),
    parameters: honoured("docker run flags mapped to the Engine API fields the docker CLI sets, each through the policy; unknown keys refused"),
    force_pull_image: honoured("the image is pulled even when the engine has it"),
    volume_driver: honoured("the driver of the container's named volumes, as docker run --volume-driver"),
  },
  "mesos.v1.ContainerInfo.DockerInfo.PortMapping": {
    host_port: honoured("the published host port"),
    container_port: honoured("the container's port"),
    protocol: honoured("tcp (default), udp or sctp"),
  },
  "mesos.v1.Parameter": { key: honoured("the docker run flag"), value: honoured("its value") },
  "mesos.v1.Parameters": { parameter: honoured("the driver options") },
  "mesos.v1.Volume": {
    mode: honoured("RW or RO (a read-only mount)"),
    container_path: honoured("the mount point (relative: inside the sandbox mount)"),
    host_path: honoured("legacy form: absolute → a host directory (policy host_path_prefixes); relative → a sandbox path"),
    image: refused("image volumes are provisioned by the Mesos containerizer; the Docker containerizer cannot mount an image"),
    source: honoured("DOCKER_VOLUME, HOST_PATH or SANDBOX_PATH"),
  },
  "mesos.v1.Volume.Source": {
    type: honoured("DOCKER_VOLUME, HOST_PATH or SANDBOX_PATH; SECRET and CSI_VOLUME are refused"),
    docker_volume: honoured("an engine volume with its driver and options (policy docker_volumes)"),
    host_path: honoured("a host directory (policy host_path_prefixes) with its propagation"),
    sandbox_path: honoured("a path in the container's own sandbox (SELF; PARENT needs a nested container and is refused)"),
    csi_volume: refused("CSI volumes need Mesos' CSI volume manager and a CSI plugin; Berth has neither"),
  },
  "mesos.v1.Volume.Source.DockerVolume": {
    driver: honoured("the volume driver (policy docker_volumes.allowed_drivers)"),
    name: honoured("the engine volume's name"),
    driver_options: honoured("the driver's options (policy docker_volumes.allow_driver_options)"),
  },
  "mesos.v1.Volume.Source.HostPath": {
    path: honoured("the host directory mounted"),
    mount_propagation: honoured("BIDIRECTIONAL → rshared, HOST_TO_CONTAINER → rslave"),
  },
  "mesos.v1.MountPropagation": { mode: honoured("the bind mount's propagation") },
  "mesos.v1.Volume.Source.SandboxPath": {
    type: honoured("SELF; PARENT is refused (no nested containers)"),
    path: honoured("the path inside the sandbox (may not leave it)"),
  },
  "mesos.v1.NetworkInfo": {
    ip_addresses: refused("Berth cannot ask the engine's network for a particular address or protocol; the engine assigns addresses (reported in Status)"),
    name: honoured("the engine network joined with docker.network USER; refused with any other network"),
    groups: refused("network security groups are an SDN/IPAM matter Berth has no means to apply"),
    labels: informational("metadata Mesos hands to CNI plugins; Mesos' docker containerizer ignores them too"),
    port_mappings: refused("CNI port mappings of the Mesos containerizer; the Docker containerizer publishes container_info.docker.port_mappings"),
  },
  "mesos.v1.LinuxInfo": {
    capability_info: honoured("deprecated form of the container's capability set (policy allowed_capabilities)"),
    bounding_capabilities: honoured("the container's capability set when effective_capabilities is not given (the engine has one set)"),
    effective_capabilities: honoured("the container's capability set (policy allowed_capabilities)"),
    share_pid_namespace: honoured("the host's pid namespace, when the policy's allow_host_pid opens it"),
    seccomp: honoured("a seccomp profile by name from --seccomp_config_dir, or unconfined when the policy allows it"),
    ipc_mode: honoured("PRIVATE → private IPC namespace, SHARE_PARENT → the host's (policy allow_host_ipc)"),
    shm_size: honoured("/dev/shm size in MB (with ipc_mode PRIVATE)"),
    share_cgroups: informational("only nested containers may leave their parent's cgroups; a top-level container has its own either way (false is refused, as Mesos' master refuses it outside task groups)"),
  },
  "mesos.v1.CapabilityInfo": { capabilities: honoured("the capabilities kept (all others dropped)") },
  "mesos.v1.SeccompInfo": {
    profile_name: honoured("the profile file <name>.json in --seccomp_config_dir"),
    unconfined: honoured("no seccomp filter, when the policy allows it"),
  },
  "mesos.v1.RLimitInfo": { rlimits: honoured("the engine's ulimits") },
  "mesos.v1.RLimitInfo.RLimit": {
    type: honoured("the limit (RLMT_NOFILE → nofile, …)"),
    hard: honoured("the hard limit (unset: unlimited)"),
    soft: honoured("the soft limit (unset: unlimited)"),
  },
  "mesos.v1.TTYInfo": {
    window_size: refused("the engine's create takes no terminal size; Berth gives the container a terminal but cannot size it"),
  },
  "mesos.v1.HealthCheck": {
    delay_seconds: honoured("wait before the first check"),
    interval_seconds: honoured("time between checks"),
    timeout_seconds: honoured("a check taking longer fails"),
    consecutive_failures: honoured("failures in a row that kill the task"),
    grace_period_seconds: honoured("failures during this time after start do not count"),
    type: honoured("COMMAND, HTTP or TCP"),
    command: honoured("the COMMAND check, run through the engine's exec"),
    http: honoured("the HTTP check, probed from the container's network namespace"),
    tcp: honoured("the TCP check, probed from the container's network namespace"),
  },
  "mesos.v1.HealthCheck.HTTPCheckInfo": {
    protocol: honoured("IPv4 or IPv6 loopback of the container"),
    scheme: honoured("http (default) or https"),
    port: honoured("the port probed"),
    path: honoured("the path requested"),
    statuses: honoured("the status codes counted as healthy (default 200-399)"),
  },
  "mesos.v1.HealthCheck.TCPCheckInfo": {
    protocol: honoured("IPv4 or IPv6 loopback of the container"),
    port: honoured("the port connected to"),
  },
  "mesos.v1.Resource": {
    name: honoured("cpus, mem, disk and ports are enforced; gpus is refused; other names are accounting only (Mesos' docker containerizer ignores them too)"),
    type: honoured("SCALAR or RANGES read for the names above"),
    scalar: honoured("the amount (finite, ≥ 0)"),
    ranges: honoured("port ranges"),
    set: informational("set-typed resources are custom ones, which Mesos' docker containerizer ignores too"),
    role: informational("deprecated reservation role, the allocator's bookkeeping; no effect on the container"),
    allocation_info: honoured("its role is the container's MESOS_ALLOCATION_ROLE"),
    reservation: informational("deprecated reservation, the allocator's bookkeeping; no effect on the container"),
    reservations: informational("the allocator's reservation stack; reserved and unreserved resources run alike"),
    disk: honoured("persistent volumes and disk sources of a disk resource (each refused below)"),
  },
  "mesos.v1.Value.Scalar": { value: honoured("the amount (limits: +Infinity means no cap)") },
  "mesos.v1.Value.Ranges": { range: honoured("the ranges") },
  "mesos.v1.Value.Range": { begin: honoured("first port"), end: honoured("last port") },
  "mesos.v1.Resource.AllocationInfo": { role: honoured("the container's MESOS_ALLOCATION_ROLE (resources of different roles are refused, as MESOS-6636)") },
  "mesos.v1.Resource.DiskInfo": {
    persistence: refused("persistent volumes live in a Mesos agent's volume store, which Berth does not have (the data would be lost)"),
    volume: refused("the mount of a persistent volume; see persistence"),
    source: refused("PATH, MOUNT, BLOCK and RAW disks are other disks of a Mesos agent; Berth measures the sandbox only"),
  },
};

/**
 * Fields Mesos sends that Berth's protos omit (their types are not carried): they arrive as
 * unknown fields, by number. Any other unknown field is refused.
 */
export const OMITTED_FIELDS: Readonly<Record<string, Readonly<Record<number, FieldRow & { name: string }>>>> = {
  "mesos.slave.ContainerConfig": {
    14: { name: "container_class", ...refused("DEBUG containers are nested ones, which Berth does not run") },
  },
  "mesos.v1.CommandInfo": {
    4: { name: "container", ...refused("the pre-0.20 CommandInfo.ContainerInfo image form; use container_info.docker.image") },
  },
  "mesos.v1.Environment.Variable": {
    4: { name: "secret", ...refused("Berth resolves no secrets; pass the value as a VALUE variable") },
  },
  "mesos.v1.Resource": {
    9: { name: "revocable", ...informational("revocable (oversubscribed) resources run like others; Mesos' docker containerizer treats them alike") },
    10: { name: "shared", ...informational("a shared persistent volume's marker; persistent volumes themselves are refused") },
    12: { name: "provider_id", ...informational("the resource provider the allocator took it from; no effect on the container") },
  },
};

/** The message at `root` (mesos.slave.ContainerConfig) checked against FIELD_SUPPORT. Throws InvalidRequest. */
export function refuseUnsupportedFields(desc: DescMessage, message: Message, path: string): void {
  const rows = FIELD_SUPPORT[desc.typeName];
  for (const field of desc.fields) {
    if (!isFieldSet(message, field)) continue;
    const at = `${path}.${field.name}`;
    const row = rows?.[field.name];
    // A field nobody decided on is refused: accepting it would drop it silently.
    if (!row) throw new InvalidRequest(`${at} is set, but Berth does not support it`);
    if (row.support === "refused") throw new InvalidRequest(`${at} is set: ${row.what}`);
    if (row.support === "informational") continue;
    const value = fieldValue(message, field);
    if (field.fieldKind === "message") refuseUnsupportedFields(field.message, value as Message, at);
    else if (field.fieldKind === "list" && field.listKind === "message") {
      for (const [i, item] of (value as Message[]).entries()) refuseUnsupportedFields(field.message, item, `${at}[${i}]`);
    } else if (field.fieldKind === "map" && field.mapKind === "message") {
      for (const [k, item] of Object.entries(value as Record<string, Message>)) refuseUnsupportedFields(field.message, item, `${at}[${quote(k)}]`);
    }
  }
  for (const u of (message as { $unknown?: Array<{ no: number }> }).$unknown ?? []) {
    const omitted = OMITTED_FIELDS[desc.typeName]?.[u.no];
    if (omitted?.support === "informational") continue;
    if (omitted) throw new InvalidRequest(`${path}.${omitted.name} (field ${u.no}) is set: ${omitted.what}`);
    // proto2 keeps an enum value it does not know as an unknown field under the field's own number.
    const known = desc.fields.find((f) => f.number === u.no);
    if (known) throw new InvalidRequest(`${path}.${known.name} has a value Berth's protos do not know (an enum value newer than Berth?)`);
    throw new InvalidRequest(`${path} has field number ${u.no}, which ${desc.typeName} in Berth's protos does not know; Berth cannot honour it`);
  }
}

function fieldValue(message: Message, field: DescField): unknown {
  const m = message as unknown as Record<string, unknown>;
  if (field.oneof) {
    const o = m[field.oneof.localName] as { case?: string; value?: unknown };
    return o.case === field.localName ? o.value : undefined;
  }
  return m[field.localName];
}

/** The table as markdown, one row per field (for the README). */
export function fieldSupportMarkdown(): string {
  const lines = ["| message | field | Berth | what it does |", "|---|---|---|---|"];
  for (const [type, rows] of Object.entries(FIELD_SUPPORT)) {
    for (const [name, row] of Object.entries(rows)) lines.push(`| \`${type}\` | \`${name}\` | ${row.support} | ${row.what.replace(/\|/g, "\\|")} |`);
    for (const [no, row] of Object.entries(OMITTED_FIELDS[type] ?? {})) {
      lines.push(`| \`${type}\` | \`${row.name}\` (${no}, not in Berth's protos) | ${row.support} | ${row.what.replace(/\|/g, "\\|")} |`);
    }
  }
  return lines.join("\n");
}
