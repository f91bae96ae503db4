/**
 * The operator policy as it applies to an exec. Of an exec's fields only the user reaches past the
 * container: argv, environment and working directory act inside the container the launch already
 * admitted (its mounts, capabilities and namespaces are the container's, an exec cannot widen
 * them). The one policy rule about a process's identity, `require_non_root_user`, therefore
 * refuses an exec as root exactly as admission refuses a launch as root. An exec without a user
 * runs as the container's user, which admission already checked.
 */
import { PermissionDenied } from "../containerizer/errors.js";
import type { Policy } from "../policy/policy.js";

/** Throws PermissionDenied when the policy forbids running the exec as `user` (field names it in the message). */
export function checkExecUser(user: string | undefined, policy: Policy, field: string): void {
  if (!policy.requireNonRootUser || user === undefined || user === "") return;
  const name = user.split(":")[0]!;
  if (name === "root" || /^0+$/.test(name)) {
    throw new PermissionDenied("require_non_root_user", field, user, "an exec must not run as root; leave the user empty to run as the container's user");
  }
}
