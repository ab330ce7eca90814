/** Running iproute2: single commands, `-batch` scripts, and the JSON link list. */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export class IpCommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')}: ${stderr.trim() || 'failed'}`);
    this.name = 'IpCommandError';
  }
}

/** `ip args…`; resolves stdout, rejects IpCommandError. prefix runs it through another command (nsenter). */
export async function ip(args: string[], prefix: string[] = []): Promise<string> {
  const argv = [...prefix, 'ip', ...args];
  try {
    const { stdout } = await execFileAsync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new IpCommandError(argv, e.stderr ?? e.message);
  }
}

/** `bridge args…` (iproute2). */
export async function bridgeCmd(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('bridge', args, { encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new IpCommandError(['bridge', ...args], e.stderr ?? e.message);
  }
}

/** `ip -batch -` with these lines; stops at the first failing line. */
export function ipBatch(lines: readonly string[], prefix: string[] = [], options: string[] = []): Promise<void> {
  if (lines.length === 0) return Promise.resolve();
  const argv = [...prefix, 'ip', ...options, '-batch', '-'];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => reject(new IpCommandError(argv, err.message)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new IpCommandError([...argv, '<<', ...lines.map((l) => `${l};`)], stderr))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

/** `nft -f -` with this text (one atomic transaction). */
export function nftApply(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => reject(new IpCommandError(['nft', '-f', '-'], err.message)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new IpCommandError(['nft', '-f', '-'], stderr))));
    child.stdin.end(text);
  });
}

/** Runs `ip` inside the network namespace at this path. */
export function inNetns(path: string): string[] {
  return ['nsenter', `--net=${path}`, '--'];
}

export interface LinkInfo {
  ifindex: number;
  name: string;
  mtu: number;
  address?: string;
  master?: string;
  kind?: string;
  /** vxlan id, for vxlan devices. */
  vxlanId?: number;
  /** vxlan source address (`local`), for vxlan devices that have one. */
  vxlanLocal?: string;
  up: boolean;
}

interface IpJsonLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string } };
}

/** Every link in the current namespace (`ip -j -d link show`). */
export async function listLinks(): Promise<LinkInfo[]> {
  const out = JSON.parse(await ip(['-j', '-d', 'link', 'show'])) as IpJsonLink[];
  return out.map((l) => ({
    ifindex: l.ifindex,
    name: l.ifname,
    mtu: l.mtu,
    address: l.address,
    master: l.master,
    kind: l.linkinfo?.info_kind,
    vxlanId: l.linkinfo?.info_kind === 'vxlan' ? l.linkinfo.info_data?.id : undefined,
    vxlanLocal: l.linkinfo?.info_kind === 'vxlan' ? l.linkinfo.info_data?.local : undefined,
    up: l.flags?.includes('UP') ?? false,
  }));
}

/** The link carrying this IPv4 address, from `ip -j addr show`. */
export async function linkWithAddress(addr: string): Promise<{ name: string; address?: string; mtu: number } | undefined> {
  const out = JSON.parse(await ip(['-j', 'addr', 'show'])) as Array<{ ifname: string; address?: string; mtu: number; addr_info?: Array<{ local?: string }> }>;
  const l = out.find((x) => x.addr_info?.some((a) => a.local === addr));
  return l ? { name: l.ifname, address: l.address, mtu: l.mtu } : undefined;
}
