/** HOST:PORT parsing shared by every subcommand ('[::1]:80' for IPv6). */
import { InvalidArgumentError } from 'commander';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(text: string, defaultHost = '127.0.0.1'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim()) ?? /^()(\d+)$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`expected HOST:PORT, got "${text}"`);
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3] ?? m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`bad port in "${text}"`);
  return { host: host === '' ? defaultHost : host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

export function parseIntArg(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}
