/** The archive formats the fetcher unpacks. */
export type ArchiveKind = 'tar' | 'zip';

// Mesos also extracts .tar.bz2/.tbz2/.tar.xz/.txz and gunzips plain .gz; node-tar reads only gzip
// (and brotli/zstd, not Mesos formats), so those files are fetched and kept but not unpacked.
const SUFFIXES: ReadonlyArray<[string, ArchiveKind]> = [
  ['.tar', 'tar'],
  ['.tar.gz', 'tar'],
  ['.tgz', 'tar'],
  ['.zip', 'zip'],
];

/** Which archive format a destination file name denotes, if any (by suffix, case-insensitive). */
export function archiveKindOf(fileName: string): ArchiveKind | null {
  const lower = fileName.toLowerCase();
  for (const [suffix, kind] of SUFFIXES) {
    if (lower.endsWith(suffix) && lower.length > suffix.length) return kind;
  }
  return null;
}
