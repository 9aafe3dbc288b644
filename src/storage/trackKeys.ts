/**
 * Where a recording's per-track files live, beside its MP4: `<room>/<id>.mp4` →
 * `<room>/<id>.tracks/`. Shared by the file and S3 storages so both lay tracks out alike.
 */
export function tracksPrefixOf(mediaKey: string): string {
  return mediaKey.replace(/\.mp4$/, '') + '.tracks/';
}

/** Re-rendered MP4s of a recording: `<room>/<id>.renders/`. */
export function rendersPrefixOf(mediaKey: string): string {
  return mediaKey.replace(/\.mp4$/, '') + '.renders/';
}
