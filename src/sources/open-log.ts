import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Open a log for reading. O_NONBLOCK: a FIFO put where the log was must not hang the open
 * (opening a FIFO for reading waits for a writer); for a regular file it changes nothing.
 * Callers fstat the handle and refuse anything but a regular file before reading.
 */
export const openLog = (path: string): Promise<FileHandle> => open(path, constants.O_RDONLY | constants.O_NONBLOCK);
