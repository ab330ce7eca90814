/**
 * `rhumb fw …`: the firewall from the command line, against a controller's REST API.
 *
 *   rhumb fw explain --from ADDR --to INSTANCE --proto tcp --port N
 *   rhumb fw explain --from ADDR --to NODE_ADDR --port HOST_PORT [--node CN_UUID]   (a published port)
 *   rhumb fw rules list [--owner UUID] [--global] [--enabled true|false]
 *   rhumb fw rules get UUID
 *   rhumb fw rules create --rule TEXT (--owner UUID | --global) [--enabled] [--log] [--description D]
 *   rhumb fw rules update UUID [--rule TEXT] [--enabled true|false] [--log true|false] [--description D]
 *   rhumb fw rules delete UUID
 *   rhumb fw log [--file PATH] [--follow] [--instance UUID] [--rule UUID]   (./fw-log.ts)
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ApiError, type ClientIo, DEFAULT_API, NapiClient, formatList, formatObject } from './client.js';
import { type CredentialFlags, addCredentialOptions, credentialedFetch } from './credentials.js';
import { registerFwLog } from './fw-log.js';

const defaultIo: ClientIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  fail: (code) => {
    process.exitCode = code;
  },
  fetch: (...args) => fetch(...args),
};

interface Flags extends CredentialFlags {
  api: string;
  json?: boolean;
}

function apiOption(): Option {
  return new Option('--api <url>', 'controller REST API').env('RHUMB_API').default(DEFAULT_API);
}

function boolArg(v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InvalidArgumentError('expected true or false');
}

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}..${max}`);
    return n;
  };
}

async function call(io: ClientIo, flags: Flags, fn: (c: NapiClient) => Promise<unknown>, show: (v: unknown) => string): Promise<void> {
  try {
    const v = await fn(new NapiClient(flags.api, await credentialedFetch(flags, io.fetch)));
    if (v === undefined) return;
    io.out(flags.json ? JSON.stringify(v, null, 2) : show(v));
  } catch (e) {
    if (e instanceof ApiError) io.err(flags.json && e.body !== undefined ? JSON.stringify(e.body, null, 2) : `error: ${e.message}`);
    else io.err(`error: ${(e as Error).message}`);
    io.fail(1);
  }
}

const RULE_COLUMNS = ['uuid', 'enabled', 'owner_uuid', 'rule'];

interface Verdict {
  action: string;
  reason: string;
  instance: string;
  enforced: boolean;
}

/** Human text for an explain answer. */
export function formatExplanation(v: { allowed: boolean; summary: string; inbound: Verdict; outbound?: Verdict; ingress?: { description: string } }): string {
  const lines = [v.allowed ? 'ALLOWED' : 'BLOCKED', `  ${v.summary}`];
  if (v.ingress) lines.push(`  ingress: ${v.ingress.description}`);
  if (v.outbound) lines.push(`  outbound from ${v.outbound.instance}: ${v.outbound.action} — ${v.outbound.reason}`);
  lines.push(`  inbound to ${v.inbound.instance}: ${v.inbound.action} — ${v.inbound.reason}`);
  return lines.join('\n');
}

export function registerFwCommands(program: Command, io: ClientIo = defaultIo): void {
  const fw = program.command('fw').description('cloud firewall: rules, explanations and flow logs');
  registerFwLog(fw, io);
  registerFwExplain(fw, io);
  registerFwRules(fw, io);
}

/** `fw explain`: which rule decides whether traffic reaches an instance (or a published port). */
function registerFwExplain(fw: Command, io: ClientIo): void {
  const explain = fw
    .command('explain')
    .description('which rule decides whether traffic from an address reaches an instance, and why')
    .requiredOption('--from <addr>', 'source IP address (or instance UUID)')
    .requiredOption('--to <instance|addr>', "destination instance UUID, or a node's address (then --port is the port published there)")
    .option('--node <uuid>', 'with an address as --to: the node it is published on (when several publish it)')
    .option('--proto <name>', 'tcp, udp, icmp, icmp6, ah or esp', 'tcp')
    .option('--port <n>', 'destination port (tcp/udp)', intArg(1, 65535))
    .option('--type <n>', 'ICMP type', intArg(0, 255))
    .option('--code <n>', 'ICMP code', intArg(0, 255))
    .addOption(apiOption())
    .option('--json', 'print raw JSON');
  addCredentialOptions(explain).action(async (f: Flags & { from: string; to: string; node?: string; proto: string; port?: number; type?: number; code?: number }) => {
      await call(
        io,
        f,
        (c) => c.request('GET', 'fw/explain', undefined, { from: f.from, to: f.to, node: f.node, proto: f.proto, port: f.port, type: f.type, code: f.code }),
        (v) => formatExplanation(v as Parameters<typeof formatExplanation>[0]),
      );
    });
}

/** `fw rules list|get|create|update|delete`: FWAPI's /rules. */
function registerFwRules(fw: Command, io: ClientIo): void {
  const rules = fw.command('rules').description('list and edit firewall rules (FWAPI-compatible /rules)');
  const common = (c: Command): Command => addCredentialOptions(c.addOption(apiOption()).option('--json', 'print raw JSON'));

  common(rules.command('list').description('list rules'))
    .option('--owner <uuid>', 'rules of this owner')
    .option('--global', 'global rules (with --owner: also global rules)')
    .option('--enabled <bool>', 'only enabled (true) or disabled (false) rules', boolArg)
    .option('--tag <name>', 'rules naming this tag (name or name=value)')
    .option('--vm <uuid>', 'rules naming this instance')
    .action(async (f: Flags & { owner?: string; global?: boolean; enabled?: boolean; tag?: string; vm?: string }) => {
      await call(
        io,
        f,
        (c) => c.request('GET', 'rules', undefined, { owner_uuid: f.owner, global: f.global, enabled: f.enabled, tag: f.tag, vm: f.vm }),
        (v) => formatList(v as Array<Record<string, unknown>>, RULE_COLUMNS),
      );
    });

  common(rules.command('get <uuid>').description('show one rule')).action(async (uuid: string, f: Flags) => {
    await call(io, f, (c) => c.request('GET', `rules/${encodeURIComponent(uuid)}`), (v) => formatObject(v as Record<string, unknown>));
  });

  common(rules.command('create').description('create a rule'))
    .requiredOption('--rule <text>', 'rule text, e.g. \'FROM any TO tag "role" = "www" ALLOW tcp PORT 80\'')
    .option('--owner <uuid>', 'owner (an owner-scoped rule)')
    .option('--global', 'a global rule')
    .option('--enabled', 'enable it now')
    .option('--log', 'log matching packets')
    .option('--description <text>', 'description')
    .action(async (f: Flags & { rule: string; owner?: string; global?: boolean; enabled?: boolean; log?: boolean; description?: string }) => {
      const body: Record<string, unknown> = { rule: f.rule };
      if (f.owner) body.owner_uuid = f.owner;
      if (f.global) body.global = true;
      if (f.enabled) body.enabled = true;
      if (f.log) body.log = true;
      if (f.description !== undefined) body.description = f.description;
      await call(io, f, (c) => c.request('POST', 'rules', body), (v) => formatObject(v as Record<string, unknown>));
    });

  common(rules.command('update <uuid>').description('change a rule'))
    .option('--rule <text>', 'new rule text')
    .option('--enabled <bool>', 'true or false', boolArg)
    .option('--log <bool>', 'true or false', boolArg)
    .option('--description <text>', 'description')
    .action(async (uuid: string, f: Flags & { rule?: string; enabled?: boolean; log?: boolean; description?: string }) => {
      const body: Record<string, unknown> = {};
      if (f.rule !== undefined) body.rule = f.rule;
      if (f.enabled !== undefined) body.enabled = f.enabled;
      if (f.log !== undefined) body.log = f.log;
      if (f.description !== undefined) body.description = f.description;
      await call(io, f, (c) => c.request('PUT', `rules/${encodeURIComponent(uuid)}`, body), (v) => formatObject(v as Record<string, unknown>));
    });

  common(rules.command('delete <uuid>').description('delete a rule')).action(async (uuid: string, f: Flags) => {
    await call(
      io,
      f,
      async (c) => {
        await c.request('DELETE', `rules/${encodeURIComponent(uuid)}`);
        return { deleted: uuid };
      },
      () => `deleted rule ${uuid}`,
    );
  });
}
