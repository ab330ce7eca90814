/**
 * One file of the agent's state directory, for root's eyes only: the directory is 0700 and
 * the file 0600 (also when an older agent left wider modes: secure() narrows them).
 * Writes replace the file atomically (a fresh temporary file, fsync, rename), so a crash
 * leaves either the old or the new content, and run one at a time in call order, each
 * writing the text it was given.
 */
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SerialQueue } from './serial.js';

export const STATE_DIR_MODE = 0o700;
export const STATE_FILE_MODE = 0o600;

async function chmodIfPresent(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export class StateFile {
  readonly dir: string;
  private readonly queue = new SerialQueue();

  constructor(readonly path: string) {
    this.dir = dirname(path);
  }

  /** Narrows the modes of the directory and the file if they exist (0700, 0600). */
  async secure(): Promise<void> {
    await chmodIfPresent(this.dir, STATE_DIR_MODE);
    await chmodIfPresent(this.path, STATE_FILE_MODE);
  }

  /** The file's text, or undefined when there is no file. */
  async read(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * The entries of the file's top-level object `field` (e.g. {"nics": {...}}), after
   * securing the file's modes; empty when there is no file. A file that does not parse,
   * or has no such object, is an error naming the file.
   */
  async readEntries(field: string): Promise<Array<[string, unknown]>> {
    await this.secure();
    const text = await this.read();
    if (text === undefined) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Error(`${this.path}: not JSON (${(err as Error).message})`, { cause: err });
    }
    const all = (parsed as Record<string, unknown> | null)?.[field];
    if (!all || typeof all !== 'object' || Array.isArray(all)) throw new Error(`${this.path}: no "${field}" object`);
    return Object.entries(all as Record<string, unknown>);
  }

  /** Replaces the file with this text (atomically), creating the directory if needed. */
  write(text: string): Promise<void> {
    return this.queue.run(async () => {
      await mkdir(this.dir, { recursive: true, mode: STATE_DIR_MODE });
      await chmod(this.dir, STATE_DIR_MODE);
      const tmp = `${this.path}.${process.pid}.tmp`;
      // A leftover temporary file may have any mode: start afresh, exclusively.
      await rm(tmp, { force: true });
      const fh = await open(tmp, 'wx', STATE_FILE_MODE);
      try {
        await fh.chmod(STATE_FILE_MODE);
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await rename(tmp, this.path);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    });
  }

  /** Removes the file (after any write queued before). */
  remove(): Promise<void> {
    return this.queue.run(() => rm(this.path, { force: true }));
  }
}
