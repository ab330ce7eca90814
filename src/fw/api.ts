/**
 * The firewall's REST routes on the controller's API port (FWAPI-compatible rules API,
 * the instance registry, the per-node ruleset feed, explain, Docker containers).
 *
 *   GET    /rules                         list (owner_uuid, global, enabled, log, action,
 *                                         protocol, vm, tag, ip, subnet, wildcard, limit, offset)
 *   POST   /rules                         create → 202 + rule
 *   GET    /rules/:uuid                   (owner_uuid must match when given → 403)
 *   PUT    /rules/:uuid                   merge + revalidate → 202 + rule (owner_uuid as GET)
 *   DELETE /rules/:uuid                   → 204
 *   GET    /rules/:uuid/vms               instances the rule selects (limit, offset)
 *   GET    /firewalls/vms/:uuid           rules that apply to an instance (limit, offset)
 *   GET    /fw/instances                  registry list (with NIC addresses and nodes; limit, offset)
 *   PUT    /fw/instances/:uuid            {owner_uuid, tags, firewall_enabled}; an owned
 *                                         instance keeps its owner (another → 403)
 *   GET    /fw/instances/:uuid            the instance as the compiler sees it
 *   DELETE /fw/instances/:uuid            (owner_uuid, when given, must match → 403)
 *   GET    /fw/instances/:uuid/ruleset    compiled policy and its nft text
 *   GET    /fw/nodes/:cn_uuid/rulesets    ?since=REV&wait=MS long-poll (agents); wait capped,
 *                                         and so are held requests (per node, in all) → 429
 *   GET    /fw/explain                    ?from=ADDR&to=INSTANCE&proto=tcp&port=N
 *   POST   /fw/docker/containers/:uuid    container spec → rules, link env, hosts
 *   GET    /fw/docker/containers/:uuid    spec, rules, env, hosts (recomputed now)
 *   DELETE /fw/docker/containers/:uuid
 *
 * List routes take limit (1..1000, default 1000) and offset, with NAPI's messages.
 *
 * Instance registry route name: /fw/instances (not FWAPI's VMAPI lookups — rhumb has no
 * VMAPI, so owner/tags/firewall_enabled are registered here and addresses come from NICs).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NapiContext } from '../napi/context.js';
import { type FieldError, NapiError, invalidParam, invalidParams, notFound, unknownParams } from '../napi/errors.js';
import { napiParams } from '../napi/http.js';
import { transact } from '../napi/txn.js';
import { paginate } from '../napi/validate.js';
import { canonicalAddress } from './addr.js';
import {
  assertInstanceOwner, assertRuleOwner, forbidden, listFilter, pageParams, parseContainer, parseProbe, requireUuid,
  ruleNotFound,
} from './api-params.js';
import { PolicyWorld, ruleSelects } from './compile.js';
import {
  DOCKER_CREATED_BY, type DockerContainerRecord, type DockerRule, dockerRules, linkDetails, resolveTarget,
  type ResolvedLink,
} from './docker.js';
import { explain } from './explain.js';
import { isValidUuid } from './lang/index.js';
import { renderRuleset } from './nft.js';
import { type CheckResult, checkRuleset } from './nft-check.js';
import { FwEngine } from './push.js';
import {
  DOCKER_CONTAINER_PREFIX, RULE_PARAMS, RULE_PREFIX, buildInstanceRecord, buildStoredRule, dockerContainerKey,
  dockerOwnerKey, instanceKey, newVersion, ruleKey, serializeRule, toPolicyRule,
} from './registry.js';
import type { InstanceRecord, InstanceView, PolicyRule, StoredRule } from './types.js';

export interface FwRoutesOptions {
  /**
   * Check rulesets with nft -c before storing a rule and before publishing a compiled
   * ruleset. Default: only when running as root (nft -c needs CAP_NET_ADMIN).
   */
  verify?: boolean | ((text: string) => Promise<CheckResult>);
  /** Longest a feed request is held open (ms). Default 60000. */
  maxWaitMs?: number;
  /** Feed requests that may wait at once for one node (more get 429). Default 4. */
  maxWaitersPerNode?: number;
  /** Feed requests that may wait at once in all (more get 429). Default 1024. */
  maxWaiters?: number;
}

/** The engine behind an app's firewall routes (for the controller and tests). */
const engines = new WeakMap<FastifyInstance, FwEngine>();
export function fwEngineOf(app: FastifyInstance): FwEngine | undefined {
  return engines.get(app);
}

/** A throwaway instance that every instance target of the rule selects (for the nft -c probe). */
function probeRuleset(rule: StoredRule): string {
  const pr = toPolicyRule(rule);
  const tags: Record<string, string> = {};
  for (const side of [pr.model.from, pr.model.to]) {
    for (const ref of side.tags) tags[typeof ref === 'string' ? ref : ref[0]] = typeof ref === 'string' ? 'x' : ref[1];
  }
  const uuid = pr.model.to.vms[0] ?? pr.model.from.vms[0] ?? '00000000-0000-4000-8000-000000000000';
  const world = new PolicyWorld();
  world.upsertRule({ ...pr, stored: { ...pr.stored, enabled: true } });
  const view: InstanceView = { uuid, tags, firewall_enabled: true, addresses: ['192.0.2.1', '2001:db8::1'], nodes: [] };
  if (rule.owner_uuid) view.owner_uuid = rule.owner_uuid;
  world.upsertInstance(view);
  return renderRuleset(uuid, world.compile(uuid));
}

async function loadRule(ctx: NapiContext, uuid: string): Promise<StoredRule | undefined> {
  const kv = await ctx.store.get(ruleKey(uuid));
  return kv ? (JSON.parse(kv.value) as StoredRule) : undefined;
}

async function allRules(ctx: NapiContext): Promise<PolicyRule[]> {
  const out: PolicyRule[] = [];
  let gt: string | undefined;
  for (;;) {
    const res = await ctx.store.range({ prefix: RULE_PREFIX, gt, limit: 5000 });
    for (const kv of res.kvs) {
      try {
        out.push(toPolicyRule(JSON.parse(kv.value) as StoredRule));
      } catch {
        /* unparseable stored rule: skipped */
      }
    }
    if (res.kvs.length < 5000) return out;
    gt = res.kvs[res.kvs.length - 1]!.key;
  }
}

function serializeInstance(v: InstanceView): Record<string, unknown> {
  return { uuid: v.uuid, owner_uuid: v.owner_uuid, tags: v.tags, firewall_enabled: v.firewall_enabled, ips: v.addresses, nodes: v.nodes };
}

// ---- Docker containers ----

async function ownerContainers(ctx: NapiContext, owner: string): Promise<DockerContainerRecord[]> {
  const res = await ctx.store.range({ prefix: DOCKER_CONTAINER_PREFIX });
  return res.kvs.map((kv) => JSON.parse(kv.value) as DockerContainerRecord).filter((c) => c.owner_uuid === owner);
}

export function fwRoutes(opts: FwRoutesOptions = {}): (app: FastifyInstance, ctx: NapiContext) => void {
  return (app, ctx) => {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const verify =
      typeof opts.verify === 'function' ? opts.verify : (opts.verify ?? isRoot) ? checkRuleset : undefined;
    const engine = new FwEngine(ctx.store, ctx.registry, verify ? { verify } : {});
    engines.set(app, engine);
    app.addHook('onReady', async () => {
      await engine.start();
    });
    app.addHook('onClose', async () => {
      engine.stop();
    });
    const maxWait = opts.maxWaitMs ?? 60_000;
    const maxWaitersPerNode = opts.maxWaitersPerNode ?? 4;
    const maxWaiters = opts.maxWaiters ?? 1024;
    const waiters = new Map<string, number>();
    let totalWaiters = 0;

    async function checkCompiles(rule: StoredRule): Promise<void> {
      if (!verify) return;
      const res = await verify(probeRuleset(rule));
      if (!res.ok) {
        throw invalidParams([invalidParam('rule', `rule compiles to an nftables ruleset nft rejects: ${res.error ?? ''}`.trim())]);
      }
    }

    // ---- rules ----

    app.get('/rules', async (req) => {
      const { filter, limit, offset } = listFilter(napiParams(req));
      const rules = (await allRules(ctx)).filter(filter).sort((a, b) => (a.stored.uuid < b.stored.uuid ? -1 : 1));
      return rules.slice(offset, offset + limit).map((r) => serializeRule(r.stored));
    });

    app.post('/rules', async (req, reply) => {
      const params = napiParams(req);
      const unknown = Object.keys(params).filter((k) => !RULE_PARAMS.has(k));
      if (unknown.length > 0) throw invalidParams([unknownParams(unknown.sort())]);
      const rule = buildStoredRule(params);
      await checkCompiles(rule);
      await transact(ctx.store, async (tx) => {
        if (await tx.get(ruleKey(rule.uuid))) {
          throw new NapiError(422, 'RuleExists', `Rule "${rule.uuid}" already exists`, [
            { field: 'uuid', code: 'Duplicate', message: 'Rule already exists' },
          ]);
        }
        tx.putJson(ruleKey(rule.uuid), rule);
      });
      reply.status(202).header('x-update-id', randomUUID());
      return rule;
    });

    async function getOwned(req: FastifyRequest): Promise<{ rule: StoredRule; params: Record<string, unknown> }> {
      const params = napiParams(req);
      const uuid = requireUuid('uuid', params.uuid, 'Invalid rule UUID');
      const rule = await loadRule(ctx, uuid);
      if (!rule) throw ruleNotFound();
      assertRuleOwner(rule, params.owner_uuid);
      return { rule, params };
    }

    app.get('/rules/:uuid', async (req) => serializeRule((await getOwned(req)).rule));

    app.put('/rules/:uuid', async (req, reply) => {
      const params = napiParams(req);
      const uuid = requireUuid('uuid', params.uuid, 'Invalid rule UUID');
      const unknown = Object.keys(params).filter((k) => !RULE_PARAMS.has(k));
      if (unknown.length > 0) throw invalidParams([unknownParams(unknown.sort())]);
      const { value } = await transact(ctx.store, async (tx) => {
        const existing = await tx.getJson<StoredRule>(ruleKey(uuid));
        if (!existing) throw ruleNotFound();
        // Checked against the rule this write replaces: a PUT cannot take another owner's rule.
        assertRuleOwner(existing, params.owner_uuid);
        const { uuid: _ignored, ...changes } = params;
        const next = buildStoredRule(changes, existing);
        await checkCompiles(next);
        tx.putJson(ruleKey(uuid), next);
        return next;
      });
      reply.status(202).header('x-update-id', randomUUID());
      return value;
    });

    app.delete('/rules/:uuid', async (req, reply) => {
      const { rule } = await getOwned(req);
      await transact(ctx.store, async (tx) => {
        if (!(await tx.get(ruleKey(rule.uuid)))) throw ruleNotFound();
        tx.del(ruleKey(rule.uuid));
      });
      reply.status(204).header('x-update-id', randomUUID());
      return reply.send();
    });

    app.get('/rules/:uuid/vms', async (req) => {
      const { rule, params } = await getOwned(req);
      const page = await pageParams(params);
      await engine.sync();
      const pr = toPolicyRule(rule);
      const uuids = new Set([...engine.world.matches(pr, 'from'), ...engine.world.matches(pr, 'to')]);
      return paginate([...uuids].sort(), page).map((u) => serializeInstance(engine.world.getInstance(u)!));
    });

    app.get('/firewalls/vms/:uuid', async (req) => {
      const params = napiParams(req);
      const uuid = requireUuid('uuid', params.uuid, 'Invalid VM UUID');
      const page = await pageParams(params);
      await engine.sync();
      const inst = engine.world.getInstance(uuid);
      if (!inst) throw notFound('VM not found');
      if (params.owner_uuid !== undefined && params.owner_uuid !== inst.owner_uuid) throw forbidden();
      const rules = (await allRules(ctx))
        .filter((r) => ruleSelects(r, 'from', inst) || ruleSelects(r, 'to', inst))
        .sort((a, b) => (a.stored.uuid < b.stored.uuid ? -1 : 1));
      return paginate(rules, page).map((r) => serializeRule(r.stored));
    });

    // ---- instance registry ----

    app.get('/fw/instances', async (req) => {
      const page = await pageParams(napiParams(req));
      await engine.sync();
      return paginate(engine.world.instanceUuids(), page).map((u) => serializeInstance(engine.world.getInstance(u)!));
    });

    app.put('/fw/instances/:uuid', async (req) => {
      const { uuid: raw, ...params } = napiParams(req);
      const uuid = requireUuid('uuid', raw, 'Invalid instance UUID');
      const { value } = await transact(ctx.store, async (tx) => {
        const base = await tx.getJson<InstanceRecord>(instanceKey(uuid));
        // An instance keeps its owner: a PUT naming another one is refused, not a transfer.
        if (base?.owner_uuid !== undefined) assertInstanceOwner(base.owner_uuid, params.owner_uuid);
        const rec = buildInstanceRecord(uuid, params, base);
        tx.putJson(instanceKey(uuid), rec);
        return rec;
      });
      return value;
    });

    app.get('/fw/instances/:uuid', async (req) => {
      const params = napiParams(req);
      const uuid = requireUuid('uuid', params.uuid, 'Invalid instance UUID');
      await engine.sync();
      const inst = engine.world.getInstance(uuid);
      if (!inst) throw notFound('Instance not found');
      assertInstanceOwner(inst.owner_uuid, params.owner_uuid);
      return serializeInstance(inst);
    });

    app.delete('/fw/instances/:uuid', async (req, reply) => {
      const params = napiParams(req);
      const uuid = requireUuid('uuid', params.uuid, 'Invalid instance UUID');
      await transact(ctx.store, async (tx) => {
        const rec = await tx.getJson<InstanceRecord>(instanceKey(uuid));
        if (!rec) throw notFound('Instance not found');
        assertInstanceOwner(rec.owner_uuid, params.owner_uuid);
        tx.del(instanceKey(uuid));
      });
      reply.status(204);
      return reply.send();
    });

    app.get('/fw/instances/:uuid/ruleset', async (req) => {
      const uuid = requireUuid('uuid', napiParams(req).uuid, 'Invalid instance UUID');
      await engine.sync();
      if (!engine.world.getInstance(uuid)) throw notFound('Instance not found');
      const rejected = engine.rejections.get(uuid);
      return { uuid, policy: engine.policy(uuid), text: engine.rulesetText(uuid), ...(rejected ? { rejected } : {}) };
    });

    // ---- agent feed ----

    app.get('/fw/nodes/:cn_uuid/rulesets', async (req) => {
      const params = napiParams(req);
      const cn = requireUuid('cn_uuid', params.cn_uuid, 'Invalid node UUID');
      const errors: FieldError[] = [];
      const since = params.since === undefined ? 0 : Number(params.since);
      if (!Number.isInteger(since) || since < 0) errors.push(invalidParam('since', 'since must be a revision (integer >= 0)'));
      const wait = params.wait === undefined ? 30_000 : Number(params.wait);
      if (!Number.isInteger(wait) || wait < 0) errors.push(invalidParam('wait', 'wait must be milliseconds (integer >= 0)'));
      if (errors.length > 0) throw invalidParams(errors);
      const waitMs = Math.min(wait, maxWait);
      if (waitMs === 0) return engine.feed(cn, since, 0);
      // Held requests are bounded per node and in all: each one holds a socket and listeners.
      const mine = waiters.get(cn) ?? 0;
      if (mine >= maxWaitersPerNode || totalWaiters >= maxWaiters) {
        throw new NapiError(
          429,
          'TooManyRequests',
          `too many requests are waiting on rulesets (at most ${maxWaitersPerNode} per node, ${maxWaiters} in all); retry later`,
        );
      }
      waiters.set(cn, mine + 1);
      totalWaiters++;
      engine.metrics.feedWaiting.inc();
      try {
        return await engine.feed(cn, since, waitMs);
      } finally {
        totalWaiters--;
        engine.metrics.feedWaiting.dec();
        const left = (waiters.get(cn) ?? 1) - 1;
        if (left > 0) waiters.set(cn, left);
        else waiters.delete(cn);
      }
    });

    // ---- explain ----

    app.get('/fw/explain', async (req) => {
      const params = napiParams(req);
      const errors: FieldError[] = [];
      // --from is an address, or an instance (then its address of the destination's family).
      const fromInstance = typeof params.from === 'string' && isValidUuid(params.from) ? params.from.toLowerCase() : undefined;
      let from = typeof params.from === 'string' && !fromInstance ? canonicalAddress(params.from) : undefined;
      if (!from && !fromInstance) errors.push(invalidParam('from', 'from must be an IP address or an instance UUID'));
      const to = typeof params.to === 'string' && isValidUuid(params.to) ? params.to.toLowerCase() : undefined;
      if (!to) errors.push(invalidParam('to', 'to must be an instance UUID'));
      const probe = parseProbe(params, errors);
      if (errors.length > 0) throw invalidParams(errors);
      await engine.sync();
      const dest = engine.world.getInstance(to!);
      if (!dest) throw notFound('Instance not found');
      if (fromInstance) {
        const src = engine.world.getInstance(fromInstance);
        if (!src) throw notFound('Source instance not found');
        const v4First = dest.addresses.some((a) => !a.includes(':'));
        from = src.addresses.find((a) => a.includes(':') !== v4First) ?? src.addresses[0];
        if (!from) throw invalidParams([invalidParam('from', 'the source instance has no address')]);
      }
      const fam = from!.includes(':') ? ':' : '.';
      const toAddress = dest.addresses.find((a) => a.includes(fam)) ?? dest.addresses[0] ?? '';
      const owners = engine.world.instancesWithAddress(from!);
      const src = owners[0];
      return explain(
        {
          from: from!,
          to: to!,
          toAddress,
          destination: engine.policy(to!),
          ...(src ? { source: { instance: src, policy: engine.policy(src) } } : {}),
        },
        probe,
      );
    });

    // ---- Docker containers ----

    async function dockerView(record: DockerContainerRecord): Promise<Record<string, unknown>> {
      await engine.sync();
      const containers = await ownerContainers(ctx, record.owner_uuid);
      const links: ResolvedLink[] = [];
      for (const l of record.links) {
        const target = resolveTarget(containers, record.owner_uuid, l.target);
        if (!target) continue;
        const addrs = engine.world.getInstance(target.uuid)?.addresses ?? [];
        links.push({ alias: l.alias, target, ip: addrs.find((a) => !a.includes(':')) ?? addrs[0] });
      }
      const rules = (await allRules(ctx))
        .filter((r) => r.stored.created_by === DOCKER_CREATED_BY && r.stored.owner_uuid === record.owner_uuid)
        .filter((r) => r.model.from.vms.includes(record.uuid) || r.model.to.vms.includes(record.uuid) || r.model.from.tags.length > 0)
        .map((r) => serializeRule(r.stored));
      return { container: record, rules, ...linkDetails(record.name, links) };
    }

    /** Makes the owner's stored docker rules exactly the wanted set (in the caller's tx). */
    async function reconcile(
      tx: Parameters<Parameters<typeof transact>[1]>[0],
      owner: string,
      containers: DockerContainerRecord[],
      icc: boolean,
    ): Promise<DockerRule[]> {
      const wanted = dockerRules(owner, containers, icc);
      const wantedIds = new Set(wanted.map((r) => r.uuid));
      for (const kv of await tx.range({ prefix: RULE_PREFIX })) {
        const r = JSON.parse(kv.value) as StoredRule;
        if (r.created_by === DOCKER_CREATED_BY && r.owner_uuid === owner && !wantedIds.has(r.uuid)) tx.del(kv.key);
      }
      for (const w of wanted) {
        const existing = await tx.getJson<StoredRule>(ruleKey(w.uuid));
        if (existing && existing.rule === w.rule && existing.enabled) continue;
        const stored: StoredRule = {
          uuid: w.uuid, rule: w.rule, enabled: true, log: false, owner_uuid: owner,
          description: w.description, created_by: DOCKER_CREATED_BY, version: newVersion(),
        };
        tx.putJson(ruleKey(w.uuid), serializeRule(stored));
      }
      return wanted;
    }

    async function ownerIcc(tx: Parameters<Parameters<typeof transact>[1]>[0], owner: string): Promise<boolean> {
      return (await tx.getJson<{ icc: boolean }>(dockerOwnerKey(owner)))?.icc ?? true;
    }

    app.post('/fw/docker/containers/:uuid', async (req) => {
      const { uuid: raw, ...params } = napiParams(req);
      const uuid = typeof raw === 'string' ? raw.toLowerCase() : '';
      const { value } = await transact(ctx.store, async (tx) => {
        const base = await tx.getJson<DockerContainerRecord>(dockerContainerKey(uuid));
        const { record, icc } = parseContainer(uuid, params, base);
        if (base && base.owner_uuid !== record.owner_uuid) throw forbidden('container belongs to another owner');
        const others = (await tx.range({ prefix: DOCKER_CONTAINER_PREFIX }))
          .map((kv) => JSON.parse(kv.value) as DockerContainerRecord)
          .filter((c) => c.owner_uuid === record.owner_uuid && c.uuid !== record.uuid);
        if (others.some((c) => c.name === record.name)) {
          throw invalidParams([{ field: 'name', code: 'Duplicate', message: `container name "${record.name}" is already in use` }]);
        }
        const all = [...others, record];
        const missing = record.links.filter((l) => !resolveTarget(all, record.owner_uuid, l.target));
        if (missing.length > 0) {
          throw invalidParams(missing.map((l) => invalidParam('links', `link target "${l.target}" not found`)));
        }
        tx.putJson(dockerContainerKey(record.uuid), record);
        if (icc !== undefined) tx.putJson(dockerOwnerKey(record.owner_uuid), { icc });
        const effectiveIcc = icc ?? (await ownerIcc(tx, record.owner_uuid));
        const inst = await tx.getJson<InstanceRecord>(instanceKey(record.uuid));
        tx.putJson(instanceKey(record.uuid), {
          uuid: record.uuid,
          owner_uuid: record.owner_uuid,
          tags: { ...(inst?.tags ?? {}), sdc_docker: true },
          firewall_enabled: true,
        } satisfies InstanceRecord);
        await reconcile(tx, record.owner_uuid, all, effectiveIcc);
        return record;
      });
      return dockerView(value);
    });

    app.get('/fw/docker/containers/:uuid', async (req) => {
      const uuid = requireUuid('uuid', napiParams(req).uuid, 'Invalid container UUID');
      const kv = await ctx.store.get(dockerContainerKey(uuid));
      if (!kv) throw notFound('Container not found');
      return dockerView(JSON.parse(kv.value) as DockerContainerRecord);
    });

    app.delete('/fw/docker/containers/:uuid', async (req, reply) => {
      const uuid = requireUuid('uuid', napiParams(req).uuid, 'Invalid container UUID');
      await transact(ctx.store, async (tx) => {
        const rec = await tx.getJson<DockerContainerRecord>(dockerContainerKey(uuid));
        if (!rec) throw notFound('Container not found');
        tx.del(dockerContainerKey(uuid));
        tx.del(instanceKey(uuid));
        const rest = (await tx.range({ prefix: DOCKER_CONTAINER_PREFIX }))
          .map((kv) => JSON.parse(kv.value) as DockerContainerRecord)
          .filter((c) => c.owner_uuid === rec.owner_uuid && c.uuid !== uuid);
        await reconcile(tx, rec.owner_uuid, rest, await ownerIcc(tx, rec.owner_uuid));
      });
      reply.status(204);
      return reply.send();
    });
  };
}

/** The firewall routes with default options (for buildNapiApp's extraRoutes / routes/index.ts). */
export const registerFwRoutes = fwRoutes();
