/**
 * `rhumb trace`: live capture of VXLAN (UDP 4789) and SVP (TCP 1296), one line per packet
 * on stdout (or one JSON object per line). Status goes to stderr so stdout stays parseable:
 * "rhumb trace: listening on IF …" once the capture is open, a summary at the end.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { type CapturedPacket, DEFAULT_FILTER, PacketCapture } from '../agent/trace/capture.js';
import { parseIntArg } from './hostport.js';

interface TraceFlags {
  iface?: string;
  vnet?: number;
  json?: boolean;
  count?: number;
  timeout?: number;
  filter: string;
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

function clock(ts: number): string {
  return new Date(ts).toISOString().slice(11, 23);
}

/** The stdout line for one packet. */
export function formatTraceLine(p: CapturedPacket, json: boolean): string {
  if (json) return JSON.stringify({ ts: p.ts, iface: p.iface, length: p.length, line: p.line, ...p.record });
  return `${clock(p.ts)} ${p.line}`;
}

export interface TraceRun {
  /** Packets printed. */
  shown: number;
  /** Why it stopped. */
  reason: 'count' | 'timeout' | 'signal';
}

/** Runs a capture until count, timeout or a signal; resolves when it is closed. */
export async function runTrace(flags: TraceFlags, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<TraceRun> {
  const capture = PacketCapture.open({ iface: flags.iface, vnet: flags.vnet, filter: flags.filter });
  process.stderr.write(
    `rhumb trace: listening on ${capture.iface} (${capture.linkType}), filter "${capture.filter}"` +
      `${flags.vnet !== undefined ? `, vnet ${flags.vnet}` : ''}\n`,
  );
  let shown = 0;
  let reason: TraceRun['reason'] = 'signal';
  const timer = flags.timeout ? setTimeout(() => ((reason = 'timeout'), capture.close()), flags.timeout * 1000) : undefined;
  const onSignal = () => ((reason = 'signal'), capture.close());
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for await (const p of capture) {
      out(formatTraceLine(p, flags.json ?? false));
      shown++;
      if (flags.count !== undefined && shown >= flags.count) {
        reason = 'count';
        break;
      }
    }
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    capture.close();
  }
  process.stderr.write(`rhumb trace: ${shown} packets shown, ${capture.filtered} filtered out (${reason})\n`);
  return { shown, reason };
}

export function registerTraceCommand(program: Command): void {
  program
    .command('trace')
    .description('capture and decode VXLAN (UDP 4789) and SVP (TCP 1296) traffic, one line per packet')
    .option('--iface <name>', "interface to capture on (default: first non-loopback interface that is up; 'any' for all)")
    .option('--vnet <vni>', 'only VXLAN with this VNI and SVP messages naming this vnet', parseIntArg(0, 0xffffff))
    .option('--json', 'one JSON object per line instead of text')
    .option('--count <n>', 'stop after n packets', parseIntArg(1, Number.MAX_SAFE_INTEGER))
    .option('--timeout <seconds>', 'stop after this many seconds', parseSeconds)
    .option('--filter <bpf>', 'libpcap filter expression', DEFAULT_FILTER)
    .action(async (flags: TraceFlags) => {
      await runTrace(flags);
    });
}
