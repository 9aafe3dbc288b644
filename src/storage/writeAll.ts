import type { FileHandle } from 'node:fs/promises';

/**
 * Append all of `data` through `fh`. FileHandle.write() makes one write(2) call and may write
 * fewer bytes than asked (a signal, a nearly full disk); a short write nobody notices is a hole
 * in the recording, so loop until every byte is written (an error such as ENOSPC still throws).
 */
export async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} with ${data.length - off} bytes left`);
    off += bytesWritten;
  }
}
