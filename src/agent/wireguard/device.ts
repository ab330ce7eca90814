/**
 * The node's WireGuard interface: created with the kernel's module where the kernel has
 * it (`ip link add … type wireguard`), else with Debian's userspace `wireguard-go`, and
 * configured the same way for both with `wg` (wireguard-tools), which talks netlink to the
 * kernel or the UAPI socket /var/run/wireguard/<name>.sock to wireguard-go.
 *
 * wireguard-go runs as a daemon of its own: like the kernel's devices, the interface
 * outlives the agent (traffic keeps flowing across a restart) and a restarted agent adopts
 * it. Its control sockets share one directory for every network namespace of the machine,
 * so the interface name is derived from the node (unique per machine, stable across
 * restarts). It only runs with WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 on kernels
 * it believes to have the module. Deleting the interface ends its daemon and socket.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import { IpCommandError, ip, listLinks } from '../plumbing/iproute.js';
import { interfaceAddressSteps } from './plan.js';

const execFileAsync = promisify(execFile);

export const WIREGUARD_GO_SOCKET_DIR = '/var/run/wireguard';

/** rwg + 10 hex digits of the node UUID's SHA-256: unique per machine, 13 characters. */
export function wireguardIfname(nodeUuid: string): string {
  return `rwg${createHash('sha256').update(nodeUuid.toLowerCase()).digest('hex').slice(0, 10)}`;
}

export type WireguardImpl = 'kernel' | 'wireguard-go';

export class WireguardDeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireguardDeviceError';
  }
}

export interface DeviceSpec {
  name: string;
  listenPort: number;
  /** File holding the private key (base64); read by `wg`, never copied anywhere else. */
  privateKeyFile: string;
  /** The node's tunnel address and the tunnel subnet's prefix length. */
  address: string;
  prefix: number;
  mtu: number;
}

/** `wg args…`; rejects WireguardDeviceError with wg's message. */
export async function wg(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('wg', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: string | number };
    const why = e.code === 'ENOENT' ? 'wg is not installed (Debian package wireguard-tools)' : (e.stderr?.trim() || e.message);
    throw new WireguardDeviceError(`wg ${args[0] ?? ''} ${args[1] ?? ''}: ${why}`);
  }
}

async function socketExists(name: string): Promise<boolean> {
  return access(`${WIREGUARD_GO_SOCKET_DIR}/${name}.sock`).then(
    () => true,
    () => false,
  );
}

/** Which implementation runs an existing interface of this name; throws if it is not WireGuard. */
async function existing(name: string): Promise<WireguardImpl | undefined> {
  const link = (await listLinks()).find((l) => l.name === name);
  if (!link) return undefined;
  if (link.kind === 'wireguard') return 'kernel';
  if (link.kind === 'tun' && (await socketExists(name))) return 'wireguard-go';
  throw new WireguardDeviceError(`an interface named ${name} exists and is not a WireGuard interface (kind ${link.kind ?? 'unknown'})`);
}

async function startWireguardGo(name: string): Promise<void> {
  try {
    // Daemonises once the interface and its socket exist. Without LOG_LEVEL the daemon
    // keeps none of our pipes (with it, it would log into them and execFile would wait).
    const { LOG_LEVEL: _level, WG_PROCESS_FOREGROUND: _fg, ...env } = process.env;
    await execFileAsync('wireguard-go', [name], {
      env: { ...env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
      timeout: 15_000,
    });
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: string | number };
    if (e.code === 'ENOENT') throw new WireguardDeviceError(`cannot create ${name}: this kernel has no WireGuard module and wireguard-go is not installed (Debian package wireguard-go)`);
    throw new WireguardDeviceError(`wireguard-go ${name}: ${e.stderr?.trim() || e.message}`);
  }
  if ((await existing(name)) !== 'wireguard-go') throw new WireguardDeviceError(`wireguard-go ${name} exited without creating the interface`);
}

/**
 * Creates the interface if needed (or adopts the one a previous agent left), then sets
 * its key, port, address and MTU and brings it up. A device this call created is deleted
 * again when configuring it fails.
 */
export async function ensureDevice(spec: DeviceSpec): Promise<{ impl: WireguardImpl; created: boolean }> {
  let impl = await existing(spec.name);
  const created = impl === undefined;
  if (!impl) {
    try {
      await ip(['link', 'add', spec.name, 'type', 'wireguard']);
      impl = 'kernel';
    } catch (err) {
      if (!(err instanceof IpCommandError) || !/Unknown device type|not supported/i.test(err.stderr)) throw new WireguardDeviceError((err as Error).message);
      await startWireguardGo(spec.name);
      impl = 'wireguard-go';
    }
  }
  try {
    await wg(['set', spec.name, 'listen-port', String(spec.listenPort), 'private-key', spec.privateKeyFile]);
    // The tunnel address changed (the node's underlay address moved, or another subnet): the old one goes first.
    for (const step of interfaceAddressSteps(await addresses(spec.name), `${spec.address}/${spec.prefix}`)) {
      // An address already gone is as good as deleted.
      await ip([...step, 'dev', spec.name]).catch((err: Error) => {
        if (step[1] !== 'del') throw err;
      });
    }
    await ip(['link', 'set', spec.name, 'mtu', String(spec.mtu), 'up']);
  } catch (err) {
    if (created) await removeDevice(spec.name);
    throw err instanceof WireguardDeviceError ? err : new WireguardDeviceError((err as Error).message);
  }
  return { impl, created };
}

async function addresses(name: string): Promise<string[]> {
  const out = JSON.parse(await ip(['-j', 'addr', 'show', 'dev', name])) as Array<{ addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>;
  return (out[0]?.addr_info ?? []).filter((a) => a.family === 'inet' && a.local).map((a) => `${a.local}/${a.prefixlen}`);
}

/** Deletes the interface (wireguard-go's daemon then exits and removes its socket). */
export async function removeDevice(name: string): Promise<void> {
  await ip(['link', 'del', name]).catch(() => undefined);
}

export async function setPrivateKey(name: string, privateKeyFile: string): Promise<void> {
  await wg(['set', name, 'private-key', privateKeyFile]);
}

/** A peer as the interface has it (`wg show NAME dump`). */
export interface DevicePeer {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  /** Unix seconds of the last handshake; 0: never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

/** The interface's public key and peers. */
export async function dump(name: string): Promise<{ publicKey: string; listenPort: number; peers: DevicePeer[] }> {
  const lines = (await wg(['show', name, 'dump'])).trim().split('\n');
  const [, publicKey = '', port = '0'] = (lines.shift() ?? '').split('\t');
  const peers = lines
    .filter((l) => l.length > 0)
    .map((l) => {
      const [key = '', , endpoint = '(none)', allowed = '(none)', hs = '0', rx = '0', tx = '0'] = l.split('\t');
      return {
        publicKey: key,
        ...(endpoint !== '(none)' ? { endpoint } : {}),
        allowedIps: allowed === '(none)' ? [] : allowed.split(','),
        latestHandshake: Number(hs),
        rxBytes: Number(rx),
        txBytes: Number(tx),
      };
    });
  return { publicKey, listenPort: Number(port), peers };
}

/** Runs `wg set NAME …` for each batch of peer arguments (from ./plan.ts's peerCommands). */
export async function applyPeerCommands(name: string, batches: readonly string[][]): Promise<void> {
  for (const b of batches) if (b.length > 0) await wg(['set', name, ...b]);
}
