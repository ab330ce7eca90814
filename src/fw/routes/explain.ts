/**
 *   GET /fw/explain   ?from=ADDR|INSTANCE&to=INSTANCE&proto=tcp&port=N
 *   GET /fw/explain   ?from=ADDR&to=NODE_ADDR&proto=tcp&port=HOST_PORT[&node=CN_UUID]
 *
 * Which compiled entry decides a packet (../explain.ts), on the engine's current state.
 * With an address as `to`, the packet arrives on a node's address and port: the port
 * published there (./ingress.ts, as the nodes report them) names the instance and port
 * it is DNATed to, and that instance's inbound policy decides, for the source address
 * the instance sees.
 */
import type { FastifyInstance } from 'fastify';
import { type FieldError, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import type { Params } from '../../rest/validate.js';
import { canonicalAddress } from '../addr.js';
import { parseProbe } from '../api-params.js';
import { type Probe, explain, explainIngress } from '../explain.js';
import { isValidUuid } from '../lang/index.js';
import { access } from '../../rest/access.js';
import type { FwRouteDeps } from './common.js';
import { explainIngressQuery, findIngress } from './ingress.js';

interface ExplainQuery {
  /** The source address, or (with fromInstance) undefined until it is looked up. */
  from: string | undefined;
  fromInstance: string | undefined;
  to: string;
  probe: Probe;
}

/** --from is an address, or an instance (then its address of the destination's family). */
function parseExplainQuery(params: Params): ExplainQuery {
  const errors: FieldError[] = [];
  const fromInstance = typeof params.from === 'string' && isValidUuid(params.from) ? params.from.toLowerCase() : undefined;
  const from = typeof params.from === 'string' && !fromInstance ? canonicalAddress(params.from) : undefined;
  if (!from && !fromInstance) errors.push(invalidParam('from', 'from must be an IP address or an instance UUID'));
  const to = typeof params.to === 'string' && isValidUuid(params.to) ? params.to.toLowerCase() : undefined;
  if (!to) errors.push(invalidParam('to', 'to must be an instance UUID or a node address (a published port)'));
  const probe = parseProbe(params, errors);
  if (errors.length > 0) throw invalidParams(errors);
  return { from, fromInstance, to: to!, probe };
}

export function registerExplainRoute(app: FastifyInstance, deps: FwRouteDeps): void {
  const { engine } = deps;

  app.get('/fw/explain', access(deps.access.explain), async (req) => {
    const params = requestParams(req);
    const ingress = explainIngressQuery(params);
    if (ingress) return explainPublished(deps, params, ingress);
    const { fromInstance, to, probe, ...q } = parseExplainQuery(params);
    let from = q.from;
    await engine.sync();
    const dest = engine.world.getInstance(to);
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
    const src = engine.world.instancesWithAddress(from!)[0];
    return explain(
      {
        from: from!,
        to,
        toAddress,
        destination: engine.policy(to),
        ...(src ? { source: { instance: src, policy: engine.policy(src) } } : {}),
      },
      probe,
    );
  });
}

/** A packet from an outside address to a node's published port. */
async function explainPublished(deps: FwRouteDeps, params: Params, q: NonNullable<ReturnType<typeof explainIngressQuery>>) {
  const from = typeof params.from === 'string' ? canonicalAddress(params.from) : undefined;
  if (!from) throw invalidParams([invalidParam('from', 'from must be an IP address when to is a published address')]);
  const probe = parseProbe(params, []);
  const match = await findIngress(deps.store, q);
  // An instance the firewall does not know has no firewall: the answer says so.
  await deps.engine.sync();
  return explainIngress({ from, match, destination: deps.engine.policy(match.entry.instance) }, probe);
}
