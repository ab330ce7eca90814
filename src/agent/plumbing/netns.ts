/**
 * Is a namespace path (already of an accepted shape, ./checks.ts) one an instance may be
 * plumbed into? It must be a network namespace that exists, and neither the agent's own
 * (the node's, where the vxlan devices and bridges live) nor the initial one of PID 1 (the
 * host's): plumbing there would put an instance's address and default route on the host.
 */
import { stat, statfs } from 'node:fs/promises';

/** statfs f_type of nsfs, the filesystem of namespace files. */
const NSFS_MAGIC = 0x6e736673;

async function identity(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Why the path is not an instance namespace, or undefined when it is one. */
export async function instanceNetnsProblem(path: string): Promise<string | undefined> {
  let fsType: number;
  try {
    fsType = (await statfs(path)).type;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `netns ${path} does not exist` : `netns ${path}: ${(err as Error).message}`;
  }
  if (fsType !== NSFS_MAGIC) return `netns ${path} is not a network namespace`;
  const target = await identity(path);
  if (target === undefined) return `netns ${path} does not exist`;
  if (target === (await identity('/proc/self/ns/net'))) return `netns ${path} is the node's own network namespace, not an instance's`;
  if (target === (await identity('/proc/1/ns/net'))) return `netns ${path} is the host's initial network namespace, not an instance's`;
  return undefined;
}
