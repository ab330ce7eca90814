/**
 * What may reach the text the agent hands to `ip -batch` and `nft -f` (both run as root).
 * Those tools split their input into lines and words, so one newline, space, quote or
 * `#` in a value turns data into commands (`ip -batch` even runs `netns exec NAME CMD`).
 * Every value is checked against a strict shape before any such text is built; the checks
 * are pure and each returns the reason for a refusal (or undefined when the value is fine).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Longest name under /run/netns this agent accepts (CNI and `ip netns` names are far shorter). */
export const MAX_NETNS_NAME = 128;

const NETNS_NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${MAX_NETNS_NAME - 1}}$`);
const NETNS_FILE = /^\/(?:var\/)?run\/netns\/([^/]*)$/;
const PROC_NETNS = /^\/proc\/([1-9][0-9]{0,9})\/ns\/net$/;

/**
 * An instance's network namespace: `/run/netns/NAME`, `/var/run/netns/NAME` (NAME: letters,
 * digits, `_ . -`, not starting with a dot or dash) or `/proc/PID/ns/net`. Nothing else: no
 * other directory, no `..`, no trailing slash, no whitespace.
 */
export function netnsPathProblem(path: unknown): string | undefined {
  const shape = 'netns must be /run/netns/NAME, /var/run/netns/NAME or /proc/PID/ns/net';
  if (typeof path !== 'string') return shape;
  const file = NETNS_FILE.exec(path);
  if (file) {
    return NETNS_NAME.test(file[1]!)
      ? undefined
      : `${shape}; NAME is 1-${MAX_NETNS_NAME} letters, digits, '_', '.' or '-', not starting with '.' or '-' (got ${JSON.stringify(path)})`;
  }
  const proc = PROC_NETNS.exec(path);
  if (proc && Number(proc[1]) <= 0x7fffffff) return undefined;
  return `${shape} (got ${JSON.stringify(path)})`;
}

/** Longest Docker sandbox path accepted (an exec-root is a short directory). */
export const MAX_SANDBOX_PATH = 256;

/**
 * A Docker sandbox key, the namespace file libnetwork bind-mounts for a container:
 * `<exec-root>/netns/<sandbox id>` (the id is 12 or 64 hex digits). An absolute path of
 * plain components (letters, digits, `_ . -`; no `.` or `..` component), nothing else. It
 * reaches nsenter's argv only (never `ip -batch` or nft text), and the agent accepts it
 * from its in-process Docker plugin, not from its HTTP API.
 */
export function sandboxPathProblem(path: unknown): string | undefined {
  const shape = 'a Docker sandbox key is an absolute path ending in /netns/<hex id>';
  if (typeof path !== 'string' || path.length > MAX_SANDBOX_PATH || !/^(?:\/[A-Za-z0-9_.-]+)+\/netns\/(?:[0-9a-f]{12}|[0-9a-f]{64})$/.test(path)) {
    return `${shape} (got ${JSON.stringify(path)?.slice(0, 300)})`;
  }
  if (path.split('/').some((c) => c === '.' || c === '..')) return `${shape}, without . or .. components (got ${JSON.stringify(path)})`;
  return undefined;
}

/**
 * A network interface name as Linux accepts it (dev_valid_name: 1-15 bytes, not `.` or
 * `..`, no `/`, `:` or whitespace), further limited to letters, digits, `_ . -` (not
 * leading `-`) so that no batch or nft metacharacter (quotes, `#`, `\`) gets through.
 */
export function ifnameProblem(name: unknown): string | undefined {
  const rule = "interface names are 1-15 letters, digits, '_', '.' or '-' (not '.', '..' or a leading '-')";
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/.test(name) || name === '.' || name === '..') {
    return `${rule}; got ${JSON.stringify(name)}`;
  }
  return undefined;
}

/** Canonical lower-case colon form only (canonicalMac's output). */
export function macProblem(mac: unknown): string | undefined {
  return typeof mac === 'string' && /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/.test(mac) ? undefined : `not a MAC address: ${JSON.stringify(mac)}`;
}

export function ipv4Problem(what: string, ip: unknown): string | undefined {
  return typeof ip === 'string' && isIPv4(ip) ? undefined : `${what} is not an IPv4 address: ${JSON.stringify(ip)}`;
}

/** `a.b.c.d/n` with n in 0..32, written without leading zeros. */
export function ipv4CidrProblem(what: string, cidr: unknown): string | undefined {
  const bad = `${what} is not an IPv4 prefix (a.b.c.d/n): ${JSON.stringify(cidr)}`;
  if (typeof cidr !== 'string') return bad;
  const m = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(cidr);
  return m && isIPv4(m[1]!) && Number(m[2]) <= 32 ? undefined : bad;
}

/** An IPv6 address in canonical (RFC 5952) text only: no zone, no embedded IPv4 form. */
export function ipv6Problem(what: string, ip: unknown): string | undefined {
  return typeof ip === 'string' && isIPv6(ip) && /^[0-9a-f:]+$/.test(ip) ? undefined : `${what} is not an IPv6 address: ${JSON.stringify(ip)}`;
}

/** An IPv4 or (canonical) IPv6 address. */
export function ipProblem(what: string, ip: unknown): string | undefined {
  return typeof ip === 'string' && isIPv4(ip) ? undefined : ipv6Problem(what, ip) && `${what} is not an IP address: ${JSON.stringify(ip)}`;
}

/** `h:h::/n` with n in 0..128 (hex, colons, no zone). */
export function ipv6CidrProblem(what: string, cidr: unknown): string | undefined {
  const bad = `${what} is not an IPv6 prefix (h:h::/n): ${JSON.stringify(cidr)}`;
  if (typeof cidr !== 'string') return bad;
  const m = /^([0-9a-f:]+)\/(0|[1-9][0-9]{0,2})$/.exec(cidr);
  return m && isIPv6(m[1]!) && Number(m[2]) <= 128 ? undefined : bad;
}

/** An IPv4 or IPv6 prefix. */
export function cidrProblem(what: string, cidr: unknown): string | undefined {
  return ipv4CidrProblem(what, cidr) && ipv6CidrProblem(what, cidr) && `${what} is not an IP prefix (address/n): ${JSON.stringify(cidr)}`;
}

export function intProblem(what: string, v: unknown, min: number, max: number): string | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? undefined : `${what} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`;
}

/** Linux's smallest IPv4 MTU and the largest an interface can have. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

/** The first problem of several (checks in the order given), or undefined. */
export function firstProblem(...problems: Array<string | undefined>): string | undefined {
  return problems.find((p) => p !== undefined);
}
