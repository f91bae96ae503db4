import { readFile } from "node:fs/promises";

/** The host's group database (a parameter so tests can bring their own). */
export const HOST_GROUP_FILE = "/etc/group";

/** The lines of a passwd/group style file, split into their ':' fields (comments and blank lines dropped; a missing file has none). */
export async function readUserDatabase(file: string): Promise<string[][]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

/** A numeric gid as is, or the gid of a group name in the host's group file; undefined when the name is unknown. */
export async function groupIdOf(group: string, groupFile = HOST_GROUP_FILE): Promise<number | undefined> {
  if (/^\d+$/.test(group)) return Number(group);
  const entry = (await readUserDatabase(groupFile)).find((e) => e[0] === group);
  return entry && /^\d+$/.test(entry[2] ?? "") ? Number(entry[2]) : undefined;
}
