/**
 * Operator client subcommands: `rhumb network list`, `rhumb nic create …`, … talking to
 * a controller's NAPI-compatible REST API. Tables by default, raw JSON with --json.
 * create/update take `key=value` arguments (values parsed as JSON when they are JSON,
 * so vlan_id=5 is a number and owner_uuids='["…"]' an array) and/or --data '<json>'.
 */
import { type Command, Option } from 'commander';
import Table from 'cli-table3';
import { type CredentialFlags, addCredentialOptions, credentialedFetch } from './credentials.js';

export const DEFAULT_API = 'http://127.0.0.1:8080';

/** Where output goes and how failure is signalled (swappable in tests). */
export interface ClientIo {
  out(text: string): void;
  err(text: string): void;
  fail(code: number): void;
  fetch: typeof fetch;
}

const defaultIo: ClientIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  fail: (code) => {
    process.exitCode = code;
  },
  fetch: (...args) => fetch(...args),
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(describeError(status, body));
    this.name = 'ApiError';
  }
}

/** "InvalidParameters: Invalid parameters" plus one indented line per element. */
export function describeError(status: number, body: unknown): string {
  if (!body || typeof body !== 'object') return `HTTP ${status}${body ? `: ${String(body)}` : ''}`;
  const b = body as { code?: string; message?: string; errors?: Array<Record<string, unknown>> };
  const lines = [`${b.code ?? `HTTP ${status}`}: ${b.message ?? ''}`.trim()];
  for (const e of b.errors ?? []) {
    const field = Array.isArray(e.field) ? e.field.join(', ') : e.field;
    let line = `  ${field ? `${String(field)}: ` : ''}${String(e.message)} (${String(e.code)})`;
    if (e.id) line += ` [${String(e.type ?? '')} ${String(e.id)}]`;
    if (Array.isArray(e.invalid)) line += ` invalid: ${e.invalid.map(String).join(', ')}`;
    lines.push(line);
  }
  return lines.join('\n');
}

/** key=value pairs (JSON values where they parse) merged over --data. */
export function parseAssignments(pairs: string[], data?: string): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  if (data !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch (e) {
      throw new Error(`--data is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('--data must be a JSON object');
    out = { ...(parsed as Record<string, unknown>) };
  }
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`expected key=value, got "${p}"`);
    const key = p.slice(0, eq);
    const raw = p.slice(eq + 1);
    out[key] = parseValue(raw);
  }
  return out;
}

function parseValue(raw: string): unknown {
  if (/^(true|false|null|-?\d+(\.\d+)?|\[.*\]|\{.*\})$/s.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A list as a table with the given columns. */
export function formatList(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const t = new Table({ head: columns, style: { head: [], border: [] } });
  for (const r of rows) t.push(columns.map((c) => cell(r[c])));
  return t.toString();
}

/** One object as a two-column key/value table. */
export function formatObject(obj: Record<string, unknown>): string {
  const t = new Table({ style: { head: [], border: [] } });
  for (const [k, v] of Object.entries(obj)) t.push({ [k]: cell(v) });
  return t.toString();
}

export class NapiClient {
  constructor(
    readonly base: string,
    private readonly doFetch: typeof fetch = fetch,
  ) {}

  async request(method: string, path: string, body?: unknown, query?: Record<string, unknown>): Promise<unknown> {
    const url = new URL(path, this.base.endsWith('/') ? this.base : `${this.base}/`);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (Array.isArray(v)) for (const x of v) url.searchParams.append(k, String(x));
      else if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const res = await this.doFetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.status >= 400) throw new ApiError(res.status, parsed);
    return parsed;
  }
}

interface CommonFlags extends CredentialFlags {
  api: string;
  json?: boolean;
  data?: string;
  owner?: string;
  vlan?: string;
}

interface ResourceSpec {
  name: string;
  description: string;
  /** Collection path (may need --owner / --vlan). */
  path: (f: CommonFlags) => string;
  idName: string;
  columns: string[];
  needs?: Array<'owner' | 'vlan'>;
}

const enc = encodeURIComponent;

const RESOURCES: ResourceSpec[] = [
  { name: 'nic-tag', description: 'nic tags', path: () => 'nic_tags', idName: 'name', columns: ['name', 'mtu', 'uuid'] },
  {
    name: 'network',
    description: 'networks',
    path: () => 'networks',
    idName: 'uuid',
    columns: ['uuid', 'name', 'subnet', 'gateway', 'vlan_id', 'nic_tag', 'mtu', 'fabric'],
  },
  {
    name: 'pool',
    description: 'network pools',
    path: () => 'network_pools',
    idName: 'uuid',
    columns: ['uuid', 'name', 'family', 'nic_tags_present', 'networks'],
  },
  {
    name: 'nic',
    description: 'NICs',
    path: () => 'nics',
    idName: 'mac',
    columns: ['mac', 'ip', 'network_uuid', 'belongs_to_type', 'belongs_to_uuid', 'cn_uuid', 'state'],
  },
  {
    name: 'fabric-vlan',
    description: "an owner's fabric VLANs (--owner)",
    path: (f) => `fabrics/${enc(f.owner ?? '')}/vlans`,
    idName: 'vlan_id',
    columns: ['vlan_id', 'name', 'vnet_id', 'description'],
    needs: ['owner'],
  },
  {
    name: 'fabric-network',
    description: "networks on an owner's fabric VLAN (--owner, --vlan)",
    path: (f) => `fabrics/${enc(f.owner ?? '')}/vlans/${enc(f.vlan ?? '')}/networks`,
    idName: 'uuid',
    columns: ['uuid', 'name', 'subnet', 'gateway', 'vnet_id', 'internet_nat'],
    needs: ['owner', 'vlan'],
  },
  {
    name: 'router',
    description: "an owner's routers connecting its fabric networks (--owner; networks=UUID,UUID)",
    path: (f) => `fabrics/${enc(f.owner ?? '')}/routers`,
    idName: 'uuid',
    columns: ['uuid', 'name', 'networks', 'description'],
    needs: ['owner'],
  },
];

function apiOption(): Option {
  return new Option('--api <url>', 'controller REST API').env('RHUMB_API').default(DEFAULT_API);
}

async function run(io: ClientIo, flags: CommonFlags, fn: (c: NapiClient) => Promise<unknown>, show: (v: unknown) => string): Promise<void> {
  try {
    const client = new NapiClient(flags.api, await credentialedFetch(flags, io.fetch));
    const v = await fn(client);
    if (v === undefined) return;
    io.out(flags.json ? JSON.stringify(v, null, 2) : show(v));
  } catch (e) {
    if (e instanceof ApiError) {
      io.err(flags.json && e.body !== undefined ? JSON.stringify(e.body, null, 2) : `error: ${e.message}`);
    } else {
      io.err(`error: ${(e as Error).message}`);
    }
    io.fail(1);
  }
}

function showList(columns: string[]) {
  return (v: unknown) =>
    Array.isArray(v) ? formatList(v as Array<Record<string, unknown>>, columns) : formatObject(v as Record<string, unknown>);
}
const showObject = (v: unknown) => formatObject(v as Record<string, unknown>);

function requireScope(spec: ResourceSpec, f: CommonFlags): void {
  for (const n of spec.needs ?? []) {
    if (!f[n]) throw new Error(`${spec.name} needs --${n}`);
  }
}

/** Adds the client subcommands to the `rhumb` program. */
export function registerClientCommands(program: Command, io: ClientIo = defaultIo): void {
  for (const spec of RESOURCES) {
    const group = program.command(spec.name).description(`manage ${spec.description}`);
    const common = (c: Command): Command => {
      addCredentialOptions(c.addOption(apiOption()).option('--json', 'print raw JSON'));
      if (spec.needs?.includes('owner')) c.option('--owner <uuid>', 'fabric owner UUID');
      if (spec.needs?.includes('vlan')) c.option('--vlan <id>', 'fabric VLAN id');
      return c;
    };
    const wrap =
      (fn: (c: NapiClient, f: CommonFlags, args: string[]) => Promise<unknown>, show: (v: unknown) => string) =>
      async (...a: unknown[]) => {
        const cmd = a[a.length - 1] as Command;
        const f = cmd.opts() as CommonFlags;
        const args = cmd.args;
        await run(io, f, async (c) => {
          requireScope(spec, f);
          return fn(c, f, args);
        }, show);
      };

    common(group.command('list').description(`list ${spec.description}; key=value filters`).argument('[filters...]')).action(
      wrap((c, f, args) => c.request('GET', spec.path(f), undefined, parseAssignments(args)), showList(spec.columns)),
    );
    common(group.command('get').argument(`<${spec.idName}>`).description(`show one by ${spec.idName}`)).action(
      wrap((c, f, [id]) => c.request('GET', `${spec.path(f)}/${enc(id)}`), showObject),
    );
    common(group.command('create').argument('[fields...]', 'key=value').option('--data <json>', 'JSON object of fields')).action(
      wrap((c, f, args) => c.request('POST', spec.path(f), parseAssignments(args, f.data)), showObject),
    );
    common(
      group
        .command('update')
        .argument(`<${spec.idName}>`)
        .argument('[fields...]', 'key=value')
        .option('--data <json>', 'JSON object of fields'),
    ).action(
      wrap(async (c, f, [id, ...rest]) => c.request('PUT', `${spec.path(f)}/${enc(id)}`, parseAssignments(rest, f.data)), showObject),
    );
    common(group.command('delete').argument(`<${spec.idName}>`)).action(
      wrap(async (c, f, [id]) => {
        await c.request('DELETE', `${spec.path(f)}/${enc(id)}`);
        io.out(`deleted ${spec.name} ${id}`);
        return undefined;
      }, showObject),
    );
  }

  // IPs live under a network: `rhumb ip list <network>`, `ip get <network> <ip>`, `ip update …`.
  const ip = program.command('ip').description("manage a network's IP records");
  const ipCols = ['ip', 'reserved', 'free', 'belongs_to_type', 'belongs_to_uuid', 'owner_uuid'];
  const ipCmd = (c: Command) => c.addOption(apiOption()).option('--json', 'print raw JSON');
  ipCmd(ip.command('list').argument('<network>').argument('[filters...]')).action(async (network: string, filters: string[], _o: unknown, cmd: Command) => {
    await run(io, cmd.opts(), (c) => c.request('GET', `networks/${enc(network)}/ips`, undefined, parseAssignments(filters)), showList(ipCols));
  });
  ipCmd(ip.command('get').argument('<network>').argument('<ip>')).action(async (network: string, addr: string, _o: unknown, cmd: Command) => {
    await run(io, cmd.opts(), (c) => c.request('GET', `networks/${enc(network)}/ips/${enc(addr)}`), showObject);
  });
  ipCmd(ip.command('update').argument('<network>').argument('<ip>').argument('[fields...]').option('--data <json>', 'JSON object of fields')).action(
    async (network: string, addr: string, fields: string[], _o: unknown, cmd: Command) => {
      const f = cmd.opts() as CommonFlags;
      await run(io, f, (c) => c.request('PUT', `networks/${enc(network)}/ips/${enc(addr)}`, parseAssignments(fields, f.data)), showObject);
    },
  );

  ipCmd(program.command('search-ip').description('which networks hold this IP').argument('<ip>').argument('[filters...]')).action(
    async (addr: string, filters: string[], _o: unknown, cmd: Command) => {
      await run(
        io,
        cmd.opts(),
        (c) => c.request('GET', 'search/ips', undefined, { ...parseAssignments(filters), ip: addr }),
        showList(['ip', 'network_uuid', 'reserved', 'free', 'belongs_to_type', 'belongs_to_uuid']),
      );
    },
  );
}
