/**
 * fwrule's canonical rule text (FwRule.prototype.text()).
 */
import type { FwRule, IcmpType, PortTarget, SideTargets, TagRef } from './types.js';

/**
 * Characters fwrule escapes when printing tags: what its parser needs escaped
 * (quote, backslash, and parentheses, for older parsers), ASCII controls, and
 * Unicode whitespace (so no one mistakes it for a space).
 */
const ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '"'], ['(', '('], [')', ')'], ['\\', '\\'],
  ['\b', 'b'], ['\t', 't'], ['\n', 'n'], ['\f', 'f'], ['\r', 'r'],
  ...[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0b, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x7f,
    0x85, 0xa0, 0x1680, 0x180e, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
    0x2008, 0x2009, 0x200a, 0x200b, 0x200c, 0x200d, 0x2028, 0x2029, 0x202f, 0x205f, 0x2060,
    0x3000, 0xfeff,
  ].map((code): [string, string] => [
    String.fromCharCode(code),
    'u' + code.toString(16).toUpperCase().padStart(4, '0'),
  ]),
]);

export function tagEscape(raw: string): string {
  let out = '';
  for (const ch of raw) {
    const esc = ESCAPES.get(ch);
    out += esc === undefined ? ch : '\\' + esc;
  }
  return out;
}

export function quote(raw: string): string {
  return '"' + tagEscape(raw) + '"';
}

function tagText(ref: TagRef): string {
  return typeof ref === 'string' ? `tag ${quote(ref)}` : `tag ${quote(ref[0])} = ${quote(ref[1])}`;
}

/** Order within a side: wildcards, ips, subnets, tags, vms (each already sorted). */
function sideText(side: SideTargets): string {
  const parts = [
    ...side.wildcards.map((w) => (w === 'vmall' ? 'all vms' : 'any')),
    ...side.ips.map((ip) => `ip ${ip}`),
    ...side.subnets.map((s) => `subnet ${s}`),
    ...side.tags.map(tagText),
    ...side.vms.map((vm) => `vm ${vm}`),
  ];
  return parts.length > 1 ? `(${parts.join(' OR ')})` : parts.join('');
}

function portsText(ports: readonly PortTarget[]): string {
  // fwrule prints PORTS only when a range is present: PORTS 1, 2 and
  // (PORT 1 AND PORT 2) are indistinguishable once parsed.
  if (ports.some((p) => typeof p === 'object')) {
    return 'PORTS ' + ports.map((p) => (typeof p === 'object' ? `${p.start} - ${p.end}` : String(p))).join(', ');
  }
  const list = ports.map(String).join(' AND PORT ');
  return ports.length > 1 ? `(PORT ${list})` : `PORT ${list}`;
}

function typesText(types: readonly IcmpType[]): string {
  const list = types
    .map((t) => (t === 'all' ? 'all' : t.code === undefined ? String(t.type) : `${t.type} CODE ${t.code}`))
    .join(' AND TYPE ');
  return types.length > 1 ? `(TYPE ${list})` : `TYPE ${list}`;
}

/** The canonical text of a rule, exactly as fwrule's text() prints it. */
export function serialize(rule: FwRule): string {
  const p = rule.protocol;
  let protoText: string;
  switch (p.name) {
    case 'tcp':
    case 'udp':
      protoText = ` ${portsText(p.ports)}`;
      break;
    case 'icmp':
    case 'icmp6':
      protoText = ` ${typesText(p.types)}`;
      break;
    default:
      protoText = '';
  }
  const priority = rule.priority > 0 ? ` PRIORITY ${rule.priority}` : '';
  return `FROM ${sideText(rule.from)} TO ${sideText(rule.to)} ${rule.action.toUpperCase()} ` +
    `${p.name}${protoText}${priority}`;
}
