/**
 * `rhumb svp …`: operator commands against any SVP server (rhumb or portolan), like
 * portolan's own CLI: ping, vl2 and vl3 lookups, and reading (optionally removing) a
 * node's shootdown log. Human output by default, `--json` for scripts.
 *
 * Exit status: 0 when the answer is OK, 2 when the server answered with another status
 * (NOTFOUND, FATAL, …), 1 on errors (no server reachable, bad arguments).
 */
import Table from 'cli-table3';
import { type Command, InvalidArgumentError } from 'commander';
import { SvpClient, parseServer } from '../svp/client.js';
import { SVP_DEFAULT_PORT, SvpStatus } from '../svp/codec.js';
import { ipToBytes, macToBytes } from '../net/addr.js';
import type { ClientTlsFlags } from '../security/tls.js';
import { addTlsOptions, tlsFrom } from './credentials.js';

export interface SvpCliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Called with 2 when a server answered with a non-OK status. */
  setExitCode(code: number): void;
}

interface CommonFlags extends ClientTlsFlags {
  server: string[];
  json?: boolean;
  timeout?: number;
}

export const DEFAULT_SVP_SERVER = `127.0.0.1:${SVP_DEFAULT_PORT}`;

/** Commander collector for a repeatable, comma-separable --server option. */
export function collectServers(value: string, previous: string[] | undefined): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of list) {
    try {
      parseServer(s);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  }
  return [...(previous ?? []), ...list];
}

function parseVnet(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n > 0xffffffff) throw new InvalidArgumentError(`expected a vnet id (0..4294967295), got "${text}"`);
  return n;
}

function parseMs(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 600000) throw new InvalidArgumentError('expected milliseconds from 1 to 600000');
  return n;
}

function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 4 || n > 0xffffffff) throw new InvalidArgumentError('expected a byte count of at least 4');
  return n;
}

function checkMac(text: string): string {
  try {
    macToBytes(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return text;
}

function checkIp(text: string): string {
  try {
    ipToBytes(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return text;
}

function withCommon(cmd: Command): Command {
  // TLS: an SVP server with --tls-dir wants a client certificate (an operator's sees every node's log).
  return addTlsOptions(
    cmd
      .option('-s, --server <host:port>', `SVP server, repeatable or comma separated (default ${DEFAULT_SVP_SERVER})`, collectServers)
      .option('--json', 'print JSON')
      .option('--timeout <ms>', 'per-query timeout', parseMs),
  );
}

const defaultIo: SvpCliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  setExitCode: (c) => {
    process.exitCode = c;
  },
};

export function registerSvpCommands(program: Command, ioOverride?: Partial<SvpCliIo>): Command {
  const io: SvpCliIo = { ...defaultIo, ...ioOverride };
  const svp = program.command('svp').description('query an SVP (portolan protocol) server');
  registerPing(svp, io);
  registerVl2(svp, io);
  registerVl3(svp, io);
  registerLog(svp, io);
  return svp;
}

function servers(f: CommonFlags): string[] {
  return f.server && f.server.length > 0 ? f.server : [DEFAULT_SVP_SERVER];
}

function print(io: SvpCliIo, f: CommonFlags, json: unknown, human: string): void {
  io.stdout(f.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
}

/** One client for the command, closed afterwards; waits up to the timeout to connect. */
async function withClient<T>(f: CommonFlags, list: string[], timeoutMs: number, fn: (c: SvpClient) => Promise<T>): Promise<T> {
  const c = new SvpClient({ servers: list, timeoutMs, keepaliveMs: 0, resolveIntervalMs: 0, tls: await tlsFrom(f) });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** `svp ping`: each server's round trip; exit 1 when one does not answer. */
function registerPing(svp: Command, io: SvpCliIo): void {
  withCommon(svp.command('ping').description('PING each server and report the round trip')).action(async (f: CommonFlags) => {
    const results = await Promise.all(
      servers(f).map(async (server) => {
        try {
          const r = await withClient(f, [server], f.timeout ?? 5000, (c) => c.ping());
          return { server: r.server, ok: true, rttMs: Number(r.rttMs.toFixed(3)) };
        } catch (err) {
          return { server, ok: false, error: (err as Error).message };
        }
      }),
    );
    print(
      io,
      f,
      results,
      results.map((r) => (r.ok ? `PONG from ${r.server} in ${r.rttMs} ms` : `no PONG from ${r.server}: ${r.error}`)).join('\n'),
    );
    if (results.some((r) => !r.ok)) io.setExitCode(1);
  });
}

/** `svp vl2 MAC VNET`: where a MAC lives. */
function registerVl2(svp: Command, io: SvpCliIo): void {
  withCommon(svp.command('vl2').description('where does MAC live on VNET').argument('<mac>', 'MAC address', checkMac).argument('<vnet>', 'vnet id', parseVnet)).action(
    async (mac: string, vnet: number, f: CommonFlags) => {
      const r = await withClient(f, servers(f), f.timeout ?? 5000, (c) => c.vl2(mac, vnet));
      print(
        io,
        f,
        r,
        r.status === SvpStatus.OK ? `OK ${mac} vnet ${vnet} is on ${r.ip} port ${r.port} (from ${r.server})` : `${r.statusName} ${mac} vnet ${vnet} (from ${r.server})`,
      );
      if (r.status !== SvpStatus.OK) io.setExitCode(2);
    },
  );
}

/** `svp vl3 IP VNET`: which MAC owns an IP, and where it lives. */
function registerVl3(svp: Command, io: SvpCliIo): void {
  withCommon(
    svp
      .command('vl3')
      .description('which MAC owns IP on VNET, and where it lives')
      .argument('<ip>', 'IP address', checkIp)
      .argument('<vnet>', 'vnet id', parseVnet)
      .option('--type <n>', 'VL3 type to send (1 IPv4, 2 IPv6; default from the address)', (v) => Number(v)),
  ).action(async (ip: string, vnet: number, f: CommonFlags & { type?: number }) => {
    const r = await withClient(f, servers(f), f.timeout ?? 5000, (c) => c.vl3(ip, vnet, f.type !== undefined ? { type: f.type } : {}));
    print(
      io,
      f,
      r,
      r.status === SvpStatus.OK
        ? `OK ${ip} vnet ${vnet} is ${r.mac} on ${r.ip} port ${r.port} (from ${r.server})`
        : `${r.statusName} ${ip} vnet ${vnet} (from ${r.server})`,
    );
    if (r.status !== SvpStatus.OK) io.setExitCode(2);
  });
}

/** `svp log UNDERLAY_IP [--rm]`: a node's pending shootdown events, optionally removed. */
function registerLog(svp: Command, io: SvpCliIo): void {
  withCommon(
    svp
      .command('log')
      .description("read a node's pending shootdown events (the server may hold the request until one arrives)")
      .argument('<underlay_ip>', "the node's underlay IP", checkIp)
      .option('--count <bytes>', 'largest LOG_ACK payload to accept', parseCount, 1024)
      .option('--rm', 'remove (acknowledge) the events read, as a node does'),
  ).action(async (underlayIp: string, f: CommonFlags & { count: number; rm?: boolean }) => {
    const timeout = f.timeout ?? 15000; // above the server's default 10 s long-poll
    const out = await withClient(f, servers(f), timeout, async (c) => {
      const log = await c.logReq(underlayIp, f.count);
      let removed: { status: string } | undefined;
      if (f.rm && log.status === SvpStatus.OK && log.entries.length > 0) {
        const rm = await c.logRm(log.entries.map((e) => e.id));
        removed = { status: rm.statusName };
      }
      return { log, removed };
    });
    const { log, removed } = out;
    if (f.json) {
      print(io, f, { ...log, ...(removed ? { removed: { count: log.entries.length, status: removed.status } } : {}) }, '');
    } else {
      const lines = [`${log.statusName}: ${log.entries.length} event(s), ${log.bytes} bytes (from ${log.server})`];
      if (log.entries.length > 0) {
        const t = new Table({ head: ['id', 'type', 'vnet', 'mac / ip', 'vlan'], style: { head: [], border: [] } });
        for (const e of log.entries)
          t.push(e.type === 'vl2' ? [e.id, 'VL2', e.vnetId, e.mac, ''] : [e.id, 'VL3', e.vnetId, e.ip, e.vlan]);
        lines.push(t.toString());
      }
      if (removed) lines.push(`removed ${log.entries.length} event(s): ${removed.status}`);
      io.stdout(`${lines.join('\n')}\n`);
    }
    if (log.status !== SvpStatus.OK || (removed && removed.status !== 'OK')) io.setExitCode(2);
  });
}
