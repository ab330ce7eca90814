/**
 * Debian's Podman (4.3, CNI network backend) as a container runtime on a node of a
 * simulated datacenter, for test/netns: each PodmanNode has its own root, runroot, tmp
 * dir, containers.conf (CONTAINERS_CONF), network config dir and runc state dir, all
 * under one temporary directory, and every command runs as `nsenter --net=<node netns>
 * podman …`, so Podman and the CNI plugins it execs live in the node's namespace.
 *
 * What Podman writes outside that directory is tracked and removed by PodmanHost.cleanup():
 * the per-run cgroup parent (every container gets `--cgroup-parent=/<prefix>`, conmon
 * runs without a cgroup of its own), the network namespaces it makes under /run/netns,
 * libcni's cache directory /var/lib/cni and the image blob cache /var/lib/containers
 * (each removed only when it did not exist before).
 *
 * Machine notes: crun refuses this host's hybrid cgroups, so runc runs the containers
 * (through a wrapper giving it its own --root); raising rlimits is refused here, so every
 * container gets `--ulimit nofile=4096:4096 --ulimit nproc=4096:4096`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { access, chmod, mkdir, readdir, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const BUSYBOX = '/bin/busybox';
const RUNC = '/usr/sbin/runc';
const CGROUP_ROOT = '/sys/fs/cgroup';

const exists = (p: string) => access(p).then(() => true, () => false);

/** True when an ELF64 executable names a program interpreter (it is dynamically linked). */
function hasElfInterpreter(path: string): boolean {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return true; // not ELF64: treat as unusable
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return true;
  return false;
}

/** Why Podman tests cannot run here, or false. */
export function podmanSkipReason(): string | false {
  for (const [bin, pkg] of [['podman', 'podman'], [RUNC, 'runc'], ['nsenter', 'util-linux'], [BUSYBOX, 'busybox-static']] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      return `needs ${bin} (Debian ${pkg})`;
    }
  }
  if (hasElfInterpreter(BUSYBOX)) return `${BUSYBOX} is dynamically linked (install busybox-static)`;
  return false;
}

/** Directory entries, or [] when the directory does not exist. */
async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Everything Podman may leave outside the test's temporary directory, and its removal. */
export class PodmanHost {
  private readonly netnsBefore: Promise<Set<string>>;
  private readonly hadCniCache: Promise<boolean>;
  private readonly hadContainersDir: Promise<boolean>;

  constructor(
    readonly dir: string,
    /** Per run: the cgroup parent of every container (/<cgroupParent>). */
    readonly cgroupParent: string,
  ) {
    this.netnsBefore = list('/run/netns').then((l) => new Set(l));
    this.hadCniCache = exists('/var/lib/cni');
    this.hadContainersDir = exists('/var/lib/containers');
  }

  /** Network namespaces Podman made (netns-<uuid>) that are still there. */
  async leftoverNetns(): Promise<string[]> {
    const before = await this.netnsBefore;
    return (await list('/run/netns')).filter((n) => n.startsWith('netns-') && !before.has(n));
  }

  /** A rootfs tar of the static busybox (every applet linked) plus the test's scripts. */
  async busyboxImageTar(scripts: Record<string, string>): Promise<string> {
    const root = join(this.dir, 'rootfs');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o1777 });
    await chmod(join(root, 'tmp'), 0o1777);
    execFileSync('cp', [BUSYBOX, join(root, 'bin', 'busybox')]);
    for (const applet of execFileSync(BUSYBOX, ['--list']).toString().split('\n').filter(Boolean)) {
      if (applet !== 'busybox') await symlink('busybox', join(root, 'bin', applet)).catch(() => undefined);
    }
    for (const [name, text] of Object.entries(scripts)) await writeFile(join(root, 'bin', name), text, { mode: 0o755 });
    const tar = join(this.dir, 'busybox.tar');
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    return tar;
  }

  async cleanup(nodes: PodmanNode[]): Promise<void> {
    for (const n of nodes) await n.removeAll().catch(() => undefined);
    // Mounts Podman may have left under our directory (shm, overlay), then the directory.
    const mounts = execFileSync('sh', ['-c', 'cat /proc/mounts']).toString().split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(this.dir));
    for (const m of mounts.sort().reverse()) await execFileAsync('umount', ['-l', m]).catch(() => undefined);
    for (const ns of await this.leftoverNetns()) {
      await execFileAsync('umount', [`/run/netns/${ns}`]).catch(() => undefined);
      await rm(`/run/netns/${ns}`, { force: true });
    }
    for (const hierarchy of await list(CGROUP_ROOT)) await removeCgroupTree(join(CGROUP_ROOT, hierarchy, this.cgroupParent));
    if (!(await this.hadCniCache)) await rm('/var/lib/cni', { recursive: true, force: true });
    if (!(await this.hadContainersDir)) await rm('/var/lib/containers', { recursive: true, force: true });
  }
}

/** rmdir a cgroup directory and its children, deepest first (cgroupfs refuses rm -r). */
async function removeCgroupTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return;
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

export interface PodmanNodeOptions {
  host: PodmanHost;
  /** The node's network namespace name (/run/netns/NAME). */
  nodeNs: string;
  /** CNI plugin directories, searched in order. */
  pluginDirs: string[];
  name: string;
}

export class PodmanNode {
  readonly dir: string;
  readonly netConfDir: string;
  private readonly conf: string;

  constructor(private readonly o: PodmanNodeOptions) {
    this.dir = join(o.host.dir, `podman-${o.name}`);
    this.netConfDir = join(this.dir, 'net.d');
    this.conf = join(this.dir, 'containers.conf');
  }

  /** Writes containers.conf and the runc wrapper. */
  async init(): Promise<void> {
    await mkdir(this.netConfDir, { recursive: true });
    const runc = join(this.dir, 'runc');
    await writeFile(runc, `#!/bin/sh\nexec ${RUNC} --root ${join(this.dir, 'runc-state')} "$@"\n`, { mode: 0o755 });
    await writeFile(
      this.conf,
      [
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = [${this.o.pluginDirs.map((d) => JSON.stringify(d)).join(', ')}]`,
        `network_config_dir = ${JSON.stringify(this.netConfDir)}`,
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `tmp_dir = ${JSON.stringify(join(this.dir, 'tmp'))}`,
        'runtime = "rhumbtestrunc"',
        '[engine.runtimes]',
        `rhumbtestrunc = [${JSON.stringify(runc)}]`,
        '',
      ].join('\n'),
    );
  }

  async writeConflist(name: string, conflist: unknown): Promise<void> {
    await writeFile(join(this.netConfDir, `${name}.conflist`), JSON.stringify(conflist, null, 2));
  }

  /** `podman ARGS…` in the node's network namespace; resolves stdout, rejects with stderr. */
  async podman(...args: string[]): Promise<string> {
    const argv = [
      `--net=/run/netns/${this.o.nodeNs}`, 'podman',
      '--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), '--storage-driver', 'vfs',
      '--network-backend', 'cni', '--network-config-dir', this.netConfDir,
      ...args,
    ];
    try {
      const { stdout } = await execFileAsync('nsenter', argv, { env: { ...process.env, CONTAINERS_CONF: this.conf }, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`podman ${args.join(' ')} (${this.o.name}): ${e.stderr?.trim() || e.message}`, { cause: err });
    }
  }

  /** `podman run -d` with the flags this machine needs; resolves the container ID. */
  async runDetached(name: string, network: string, image: string, cmd: string[], extra: string[] = []): Promise<string> {
    const out = await this.podman(
      'run', '-d', '--name', name, '--hostname', name, '--network', network,
      '--cap-add', 'NET_RAW', '--cgroups', 'no-conmon', '--cgroup-parent', `/${this.o.host.cgroupParent}`,
      '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096',
      ...extra, image, ...cmd,
    );
    return out.trim();
  }

  /** `podman exec NAME CMD…`. */
  exec(name: string, ...cmd: string[]): Promise<string> {
    return this.podman('exec', name, ...cmd);
  }

  /** Every container of this node, removed at once (no stop timeout). */
  async removeAll(): Promise<void> {
    await this.podman('rm', '-a', '-f', '-t', '0');
  }
}
