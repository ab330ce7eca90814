/**
 * Who may call the firewall's routes (enforced by src/rest/auth.ts; a route without a
 * declaration is for admins only):
 *
 *   rules                 an owner: its own (owner_uuid), never a global rule
 *   instances, Docker     an owner: instances whose registry record and NICs are all its own
 *   explain               an owner: towards its own instance (named, or the one a published
 *                         port leads to), from an address or its own instance
 *   node ingress          a node: its own published ports (cn_uuid in the path)
 *   ruleset feed          a node: its own (cn_uuid in the path); a long-poll
 */
import type { FastifyRequest } from 'fastify';
import { type RouteAccess, bodyIs, existing, filterBy, forbidFields, param, pathIs } from '../../rest/access.js';
import { notFound } from '../../rest/errors.js';
import type { Params } from '../../rest/validate.js';
import type { Store } from '../../store/types.js';
import { ruleNotFound } from '../api-params.js';
import { containerNotFound, type DockerContainerRecord } from '../docker.js';
import { isValidUuid } from '../lang/index.js';
import type { FwEngine } from '../push.js';
import { dockerContainerKey } from '../registry.js';
import { loadRule } from './common.js';
import { explainIngressQuery, findIngress } from './ingress.js';
import { requestParams } from '../../rest/http.js';

const pathUuid = (req: FastifyRequest): string | undefined => {
  const v = (req.params as Params).uuid;
  return typeof v === 'string' && isValidUuid(v) ? v.toLowerCase() : undefined;
};

export function fwAccess(store: Store, engine: FwEngine) {
  const instanceOwner = async (uuid: string | undefined) => {
    if (!uuid) return null;
    await engine.sync();
    return engine.instanceOwner(uuid);
  };
  const ruleOwner = async (req: FastifyRequest) => {
    const uuid = pathUuid(req);
    const rule = uuid ? await loadRule(store, uuid) : undefined;
    return rule ? rule.owner_uuid : null;
  };
  /**
   * The owner of the instance a published port leads to, when explain's `to` is an address
   * (null otherwise, or when nothing or several match: the route answers that). An
   * instance the firewall does not know is nobody's: only admins explain it.
   */
  const publishedOwner = async (req: FastifyRequest): Promise<string | null> => {
    const q = explainIngressQuery(requestParams(req));
    const match = q ? await findIngress(store, q).catch(() => undefined) : undefined;
    return match ? ((await instanceOwner(match.entry.instance)) ?? '') : null;
  };
  const instanceNotFound = () => notFound('Instance not found');
  const ownInstance = existing((req) => instanceOwner(pathUuid(req)), instanceNotFound);
  const ownContainer = existing(async (req) => {
    const uuid = pathUuid(req);
    const kv = uuid ? await store.get(dockerContainerKey(uuid)) : undefined;
    return kv ? (JSON.parse(kv.value) as DockerContainerRecord).owner_uuid : null;
  }, containerNotFound);

  return {
    ruleList: { allow: ['owner'], owner: [filterBy('owner_uuid', ['global'])] },
    ruleCreate: { allow: ['owner'], owner: [bodyIs('owner_uuid'), forbidFields('global')] },
    ruleRead: { allow: ['owner'], owner: [existing(ruleOwner, ruleNotFound)] },
    ruleUpdate: { allow: ['owner'], owner: [existing(ruleOwner, ruleNotFound), bodyIs('owner_uuid'), forbidFields('global')] },
    vmRules: { allow: ['owner'], owner: [existing((req) => instanceOwner(pathUuid(req)), () => notFound('VM not found'))] },
    instanceList: { allow: ['owner'], owner: [filterBy('owner_uuid')] },
    instanceRead: { allow: ['owner'], owner: [ownInstance] },
    instanceWrite: { allow: ['owner'], owner: [ownInstance, bodyIs('owner_uuid')] },
    explain: {
      allow: ['owner'],
      owner: [
        existing((req) => instanceOwner(queryUuid(req, 'to')), instanceNotFound),
        existing((req) => instanceOwner(queryUuid(req, 'from')), () => notFound('Source instance not found')),
        existing(publishedOwner, instanceNotFound),
      ],
    },
    nodeIngress: { allow: ['node'], node: [pathIs('cn_uuid', () => notFound('node not found'))] },
    container: { allow: ['owner'], owner: [ownContainer, ownInstance] },
    containerWrite: { allow: ['owner'], owner: [ownContainer, ownInstance, bodyIs('owner_uuid')] },
    feed: { allow: ['node'], node: [pathIs('cn_uuid', () => notFound('node not found'))], longPoll: true },
  } satisfies Record<string, RouteAccess>;
}

function queryUuid(req: FastifyRequest, field: string): string | undefined {
  const v = param(req, field);
  return typeof v === 'string' && isValidUuid(v) ? v.toLowerCase() : undefined;
}
