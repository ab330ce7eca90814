/**
 * Real Docker Engines for test/netns: one dockerd per node namespace, each with its own
 * data root, exec root, socket, pidfile, containerd (dockerd starts its own, under the
 * exec root) and cgroup parent, started with `nsenter --net=` (not `ip netns exec`, which
 * remounts /sys and hides the cgroup mounts), `--bridge=none --iptables=false
 * --ip6tables=false --ip-masq=false --userland-proxy=false`. Images come from a busybox
 * rootfs (Debian's busybox-static) through `docker import`: no registry is reached.
 *
 *   const dl = new DockerLab(lab.prefix);           // after(): await dl.cleanup() (before the agents stop)
 *   const d1 = await dl.start(node1);              // its socket: d1.host
 *   await dl.importBusybox(d1);                    // image dl.image
 *   await d1.docker('run', '--rm', dl.image, 'true');
 *   await dl.installSpec(name, 'tcp://127.0.0.1:PORT');
 *
 * cleanup() removes every container and network (through the plugin: call it while the
 * agents still run), stops the daemons and their process trees, unmounts what they
 * mounted, removes their directories and cgroups, the spec file, and the host files
 * dockerd 20.10 creates by itself (/etc/docker/key.json, /run/docker/plugins) when they
 * were not there before.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, rmdir, symlink, writeFile, copyFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DatacenterNode } from './datacenter.js';
import { ProcessOutput, sleep } from './datacenter.js';
import { netnsSkipReason } from './netns.js';

const execFileAsync = promisify(execFile);

export const DOCKERD = '/usr/sbin/dockerd';
/** Debian's CLI (another `docker` may come first on PATH). */
export const DOCKER_CLI = '/usr/bin/docker';
export const BUSYBOX = '/bin/busybox';

/** Why Docker tests cannot run here, or false. */
export function dockerSkipReason(): string | false {
  const base = netnsSkipReason();
  if (base) return base;
  for (const [path, pkg] of [[DOCKERD, 'docker.io'], [DOCKER_CLI, 'docker.io'], [BUSYBOX, 'busybox-static']] as const) {
    if (!existsSync(path)) return `needs ${path} (Debian's ${pkg}; scripts/setup.sh installs it)`;
  }
  return false;
}

export class DockerError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly code: number | null,
  ) {
    super(`docker ${args.join(' ')}: ${stderr.trim()}`);
    this.name = 'DockerError';
  }
}

export interface Dockerd {
  node: DatacenterNode;
  dir: string;
  /** unix:///…/docker.sock */
  host: string;
  proc: ChildProcess;
  out: ProcessOutput;
  /** Runs the CLI against this daemon; rejects DockerError with its stderr. */
  docker(...args: string[]): Promise<string>;
  /** Like docker(), resolving {code, stdout, stderr} instead of rejecting. */
  tryDocker(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Host files dockerd creates on its own, and whether they existed before this run. */
const HOST_FILES = ['/etc/docker/key.json', '/run/docker/plugins', '/run/docker'] as const;

export class DockerLab {
  readonly base: string;
  readonly image: string;
  readonly cgroupParent: string;
  private readonly daemons: Dockerd[] = [];
  private readonly specs: string[] = [];
  private readonly preexisting = new Map<string, boolean>();

  constructor(readonly prefix: string) {
    this.base = join(tmpdir(), `rhumb-docker-${prefix}`);
    this.image = `rhumb-busybox-${prefix}:test`;
    this.cgroupParent = `/rhumb-${prefix}`;
    for (const f of HOST_FILES) this.preexisting.set(f, existsSync(f));
  }

  /** Stops a daemon and starts it again on the same directories (its containers stop: no live-restore). */
  async restart(d: Dockerd): Promise<Dockerd> {
    await this.stop(d);
    return this.start(d.node);
  }

  /** Starts dockerd inside the node's namespace and waits until it answers. */
  async start(node: DatacenterNode, extraArgs: string[] = []): Promise<Dockerd> {
    const dir = join(this.base, node.name);
    await mkdir(join(dir, 'cli'), { recursive: true });
    const sock = join(dir, 'docker.sock');
    const args = [
      `--net=/run/netns/${node.ns}`,
      DOCKERD,
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'),
      '-H', `unix://${sock}`,
      '--pidfile', join(dir, 'docker.pid'),
      '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false',
      '--cgroup-parent', `${this.cgroupParent}-${node.name}`,
      '--containerd-namespace', `rhumb-${this.prefix}`,
      '--containerd-plugins-namespace', `rhumb-${this.prefix}-plugins`,
      '--log-level', 'warn',
      ...extraArgs,
    ];
    const proc = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = new ProcessOutput(proc);
    const env = { ...process.env, DOCKER_CONFIG: join(dir, 'cli') };
    const run = async (...a: string[]) => {
      try {
        const { stdout } = await execFileAsync(DOCKER_CLI, ['-H', `unix://${sock}`, ...a], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
        return stdout;
      } catch (err) {
        const e = err as Error & { stderr?: string; code?: number };
        throw new DockerError(a, e.stderr ?? e.message, typeof e.code === 'number' ? e.code : null);
      }
    };
    const d: Dockerd = {
      node,
      dir,
      host: `unix://${sock}`,
      proc,
      out,
      docker: run,
      tryDocker: async (...a: string[]) => {
        try {
          return { code: 0, stdout: await run(...a), stderr: '' };
        } catch (err) {
          const e = err as DockerError;
          return { code: e.code ?? 1, stdout: '', stderr: e.stderr };
        }
      },
    };
    this.daemons.push(d);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`dockerd on ${node.name} exited: ${out.stderr}`);
      try {
        await run('version', '--format', '{{.Server.Version}}');
        return d;
      } catch {
        if (Date.now() > deadline) throw new Error(`dockerd on ${node.name} did not answer: ${out.stderr}`);
        await sleep(200);
      }
    }
  }

  private tar: Promise<string> | undefined;

  /** A busybox rootfs tarball (static binary, one symlink per applet), built once per lab. */
  busyboxTar(): Promise<string> {
    this.tar ??= this.buildBusyboxTar();
    return this.tar;
  }

  private async buildBusyboxTar(): Promise<string> {
    const tar = join(this.base, 'busybox.tar');
    const root = join(this.base, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www']) await mkdir(join(root, d), { recursive: true });
    await copyFile(BUSYBOX, join(root, 'bin/busybox'));
    await chmod(join(root, 'bin/busybox'), 0o755);
    const { stdout } = await execFileAsync(BUSYBOX, ['--list'], { encoding: 'utf8' });
    for (const applet of stdout.split('\n').filter((a) => a && a !== 'busybox')) await symlink('busybox', join(root, 'bin', applet));
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
    await writeFile(join(root, 'www/index.html'), 'ok\n');
    await execFileAsync('tar', ['-C', root, '-cf', tar, '.']);
    return tar;
  }

  /** Imports the busybox image into a daemon (as this.image). */
  async importBusybox(d: Dockerd): Promise<void> {
    await d.docker('import', '-c', 'CMD ["/bin/sh"]', '-c', 'ENV PATH=/bin', await this.busyboxTar(), this.image);
  }

  /** Writes /etc/docker/plugins/<name>.spec (removed at cleanup). */
  async installSpec(name: string, url: string): Promise<void> {
    await mkdir('/etc/docker/plugins', { recursive: true });
    const path = `/etc/docker/plugins/${name}.spec`;
    this.specs.push(path);
    await writeFile(path, `${url}\n`);
  }

  /** Removes containers and networks on every daemon (needs the plugin: before the agents stop). */
  async clearDaemons(): Promise<void> {
    for (const d of this.daemons) {
      if (d.proc.exitCode !== null) continue;
      const ids = (await d.tryDocker('ps', '-aq')).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.tryDocker('rm', '-f', ...ids);
      const nets = (await d.tryDocker('network', 'ls', '-q', '--filter', 'type=custom')).stdout.split('\n').filter(Boolean);
      for (const n of nets) await d.tryDocker('network', 'rm', n);
    }
  }

  /** Stops one daemon (SIGTERM, then its whole process tree by force), leaving its files. */
  async stop(d: Dockerd): Promise<void> {
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      const exited = new Promise<void>((r) => d.proc.once('exit', () => r()));
      d.proc.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
    }
    // containerd and shims it left: every process whose command line names this daemon's directory.
    for (let i = 0; i < 3; i++) {
      const pids = await this.processesUnder(d.dir);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, i === 0 ? 'SIGTERM' : 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(500);
    }
    this.daemons.splice(this.daemons.indexOf(d), 1);
  }

  private async processesUnder(dir: string): Promise<number[]> {
    const out: number[] = [];
    for (const e of await readdir('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      if (isDockerProcess(await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => ''), dir)) out.push(Number(e));
    }
    return out;
  }

  /** Everything, in order; safe to call twice. */
  async cleanup(): Promise<void> {
    await this.clearDaemons().catch(() => undefined);
    for (const d of [...this.daemons]) await this.stop(d);
    for (const pid of await this.processesUnder(this.base)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(this.base));
    for (const m of mounts.sort().reverse()) await execFileAsync('umount', ['-l', m]).catch(() => undefined);
    await rm(this.base, { recursive: true, force: true });
    for (const ctl of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      for (const node of ['n1', 'n2', 'n3', 'n4', 'n5']) await removeCgroup(join('/sys/fs/cgroup', ctl, `${this.cgroupParent.slice(1)}-${node}`));
    }
    for (const s of this.specs.splice(0)) await rm(s, { force: true });
    if (!this.preexisting.get('/etc/docker/key.json')) await rm('/etc/docker/key.json', { force: true });
    for (const dir of ['/etc/docker/plugins', '/run/docker/plugins', '/run/docker']) {
      if (this.preexisting.get(dir) === false || dir === '/etc/docker/plugins') await rmdir(dir).catch(() => undefined);
    }
  }

  /** Last resort from a process exit handler: the daemons and every process naming this lab's directory, by pid. */
  cleanupSync(): void {
    for (const d of this.daemons) d.proc.kill('SIGKILL');
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!isDockerProcess(cmd, this.base)) continue;
      try {
        process.kill(Number(e), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/** Docker's own programs (not, say, an agent pointed at the daemon's socket). */
const DOCKER_PROGRAMS = new Set(['dockerd', 'containerd', 'containerd-shim', 'containerd-shim-runc-v2', 'runc', 'docker-init', 'docker-proxy']);

/** A process of Docker's whose command line names dir. */
function isDockerProcess(cmdline: string, dir: string): boolean {
  const argv0 = cmdline.split('\0')[0] ?? '';
  return cmdline.includes(dir) && DOCKER_PROGRAMS.has(argv0.split('/').pop() ?? '');
}

/** rmdir a cgroup and its children (empty ones only: the kernel refuses the others). */
async function removeCgroup(path: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return;
  for (const e of entries) if (e.isDirectory()) await removeCgroup(join(path, e.name));
  await rmdir(path).catch(() => undefined);
}
