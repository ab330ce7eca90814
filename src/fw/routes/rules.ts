/**
 * The FWAPI-compatible rules API:
 *
 *   GET    /rules                 list (owner_uuid, global, enabled, log, action, protocol,
 *                                 vm, tag, ip, subnet, wildcard, limit, offset)
 *   POST   /rules                 create → 202 + rule
 *   GET    /rules/:uuid           (owner_uuid must match when given → 403)
 *   PUT    /rules/:uuid           merge + revalidate → 202 + rule (owner_uuid as GET)
 *   DELETE /rules/:uuid           → 204
 *   GET    /rules/:uuid/vms       instances the rule selects (limit, offset)
 *   GET    /firewalls/vms/:uuid   rules that apply to an instance (limit, offset)
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { forbidden, invalidParam, invalidParams, notFound, ruleExists, unknownParams } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import { type Params, paginate } from '../../rest/validate.js';
import { transact } from '../../store/txn.js';
import { assertRuleOwner, listFilter, pageParams, requireUuid, ruleNotFound } from '../api-params.js';
import { PolicyWorld, ruleSelects } from '../compile.js';
import { renderRuleset } from '../nft.js';
import type { CheckResult } from '../nft-check.js';
import { RULE_PARAMS, buildStoredRule, ruleKey, serializeRule, toPolicyRule } from '../registry.js';
import type { InstanceView, StoredRule } from '../types.js';
import { access } from '../../rest/access.js';
import { type FwRouteDeps, allRules, byRuleUuid, loadRule, serializeInstance } from './common.js';

export interface RuleRouteDeps extends FwRouteDeps {
  /** Checks the nft text a rule compiles to before the rule is stored (undefined: no check). */
  verify: ((text: string) => Promise<CheckResult>) | undefined;
}

/** A throwaway instance that every instance target of the rule selects (for the nft -c probe). */
export function probeRuleset(rule: StoredRule): string {
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

function rejectUnknownRuleParams(params: Params): void {
  const unknown = Object.keys(params).filter((k) => !RULE_PARAMS.has(k));
  if (unknown.length > 0) throw invalidParams([unknownParams(unknown.sort())]);
}

/** Rejects a rule whose nftables ruleset nft refuses (no verify: no check). */
async function checkCompiles(verify: RuleRouteDeps['verify'], rule: StoredRule): Promise<void> {
  if (!verify) return;
  const res = await verify(probeRuleset(rule));
  if (!res.ok) {
    throw invalidParams([invalidParam('rule', `rule compiles to an nftables ruleset nft rejects: ${res.error ?? ''}`.trim())]);
  }
}

/** The rule the path names, when the request's owner_uuid (if any) may see it. */
async function getOwned(store: FwRouteDeps['store'], req: FastifyRequest): Promise<{ rule: StoredRule; params: Params }> {
  const params = requestParams(req);
  const uuid = requireUuid('uuid', params.uuid, 'Invalid rule UUID');
  const rule = await loadRule(store, uuid);
  if (!rule) throw ruleNotFound();
  assertRuleOwner(rule, params.owner_uuid);
  return { rule, params };
}

/** The rules themselves: list, create, read, update, delete; then which instances they select. */
export function registerRuleRoutes(app: FastifyInstance, deps: RuleRouteDeps): void {
  const { store, verify } = deps;
  const a = deps.access;

  app.get('/rules', access(a.ruleList), async (req) => {
    const { filter, limit, offset } = listFilter(requestParams(req));
    const rules = (await allRules(store)).filter(filter).sort(byRuleUuid);
    return rules.slice(offset, offset + limit).map((r) => serializeRule(r.stored));
  });

  app.post('/rules', access(a.ruleCreate), async (req, reply) => {
    const params = requestParams(req);
    rejectUnknownRuleParams(params);
    const rule = buildStoredRule(params);
    await checkCompiles(verify, rule);
    await transact(store, async (tx) => {
      if (await tx.get(ruleKey(rule.uuid))) throw ruleExists(rule.uuid);
      tx.putJson(ruleKey(rule.uuid), rule);
    });
    reply.status(202).header('x-update-id', randomUUID());
    return rule;
  });

  app.get('/rules/:uuid', access(a.ruleRead), async (req) => serializeRule((await getOwned(store, req)).rule));

  app.put('/rules/:uuid', access(a.ruleUpdate), async (req, reply) => {
    const params = requestParams(req);
    const uuid = requireUuid('uuid', params.uuid, 'Invalid rule UUID');
    rejectUnknownRuleParams(params);
    const { value } = await transact(store, async (tx) => {
      const existing = await tx.getJson<StoredRule>(ruleKey(uuid));
      if (!existing) throw ruleNotFound();
      // Checked against the rule this write replaces: a PUT cannot take another owner's rule.
      assertRuleOwner(existing, params.owner_uuid);
      const { uuid: _ignored, ...changes } = params;
      const next = buildStoredRule(changes, existing);
      await checkCompiles(verify, next);
      tx.putJson(ruleKey(uuid), next);
      return next;
    });
    reply.status(202).header('x-update-id', randomUUID());
    return value;
  });

  app.delete('/rules/:uuid', access(a.ruleRead), async (req, reply) => {
    const { rule } = await getOwned(store, req);
    await transact(store, async (tx) => {
      if (!(await tx.get(ruleKey(rule.uuid)))) throw ruleNotFound();
      tx.del(ruleKey(rule.uuid));
    });
    reply.status(204).header('x-update-id', randomUUID());
    return reply.send();
  });

  registerRuleSelectionRoutes(app, deps);
}

/** Which instances a rule selects, and which rules select an instance (the engine's world). */
function registerRuleSelectionRoutes(app: FastifyInstance, deps: FwRouteDeps): void {
  const { store, engine } = deps;
  const a = deps.access;

  app.get('/rules/:uuid/vms', access(a.ruleRead), async (req) => {
    const { rule, params } = await getOwned(store, req);
    const page = await pageParams(params);
    await engine.sync();
    const pr = toPolicyRule(rule);
    const uuids = new Set([...engine.world.matches(pr, 'from'), ...engine.world.matches(pr, 'to')]);
    return paginate([...uuids].sort(), page).map((u) => serializeInstance(engine.world.getInstance(u)!));
  });

  app.get('/firewalls/vms/:uuid', access(a.vmRules), async (req) => {
    const params = requestParams(req);
    const uuid = requireUuid('uuid', params.uuid, 'Invalid VM UUID');
    const page = await pageParams(params);
    await engine.sync();
    const inst = engine.world.getInstance(uuid);
    if (!inst) throw notFound('VM not found');
    if (params.owner_uuid !== undefined && params.owner_uuid !== inst.owner_uuid) throw forbidden();
    const rules = (await allRules(store)).filter((r) => ruleSelects(r, 'from', inst) || ruleSelects(r, 'to', inst)).sort(byRuleUuid);
    return paginate(rules, page).map((r) => serializeRule(r.stored));
  });
}
