/** The archive formats the fetcher unpacks ('gz': one gzipped file, not a tar). */
export type ArchiveKind = 'tar' | 'zip' | 'gz';

// Mesos also extracts .tar.bz2/.tbz2/.tar.xz/.txz; node-tar reads only gzip (and brotli/zstd, not
// Mesos formats), so those files are fetched and kept but not unpacked. A plain '.gz' is gunzipped
// next to the archive, as Mesos' fetcher does with `gunzip -d -c`. Order matters: '.tar.gz' is a tar.
const SUFFIXES: ReadonlyArray<[string, ArchiveKind]> = [
  ['.tar', 'tar'],
  ['.tar.gz', 'tar'],
  ['.tgz', 'tar'],
  ['.zip', 'zip'],
  ['.gz', 'gz'],
];

/** Which archive format a destination file name denotes, if any (by suffix, case-insensitive). */
export function archiveKindOf(fileName: string): ArchiveKind | null {
  const lower = fileName.toLowerCase();
  for (const [suffix, kind] of SUFFIXES) {
    if (lower.endsWith(suffix) && lower.length > suffix.length) return kind;
  }
  return null;
}

/** The name a gunzipped '.gz' file gets: the name without its '.gz' (as Mesos' fetcher names it). */
export function gunzippedName(fileName: string): string {
  return fileName.slice(0, -'.gz'.length);
}
