/**
 * What the controller tells the operator at start about an exposed configuration: a
 * listener beyond loopback without TLS, or a REST API without tokens. Pure.
 */
import { isIP } from 'node:net';

export interface ExposureFacts {
  rest: { host: string };
  svp: string;
  svpPlaintext: string | undefined;
  tls: boolean;
  tokens: boolean;
  metricsOpen: boolean;
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return isIP(h) === 4 && h.startsWith('127.');
}

export function startupWarnings(f: ExposureFacts): string[] {
  const out: string[] = [];
  const restOut = !isLoopbackHost(f.rest.host);
  const svpOut = !isLoopbackHost(f.svp);
  if (!f.tls && (restOut || svpOut)) {
    const which = [restOut ? 'REST' : '', svpOut ? 'SVP' : ''].filter(Boolean).join(' and ');
    out.push(`${which} listen beyond loopback without TLS: anyone on the network can read every tenant's topology and (SVP) drain nodes' shootdowns; use --tls-dir (rhumb pki init)`);
  }
  if (!f.tokens && restOut) {
    out.push("REST listens beyond loopback without --auth-file: anyone who reaches it may change every tenant's networks, NICs and firewall rules");
  }
  if (f.svpPlaintext !== undefined && !isLoopbackHost(f.svpPlaintext)) {
    out.push('the plaintext SVP listener answers lookups (every mapping) to anyone who reaches it');
  }
  if (f.tokens && f.metricsOpen && restOut) out.push('/metrics is open to anyone (--metrics-open)');
  return out;
}
