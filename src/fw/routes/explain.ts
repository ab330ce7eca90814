/**
 *   GET /fw/explain   ?from=ADDR|INSTANCE&to=INSTANCE&proto=tcp&port=N
 *
 * Which compiled entry decides a packet (../explain.ts), on the engine's current state.
 */
import type { FastifyInstance } from 'fastify';
import { type FieldError, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import type { Params } from '../../rest/validate.js';
import { canonicalAddress } from '../addr.js';
import { parseProbe } from '../api-params.js';
import { type Probe, explain } from '../explain.js';
import { isValidUuid } from '../lang/index.js';
import { access } from '../../rest/access.js';
import type { FwRouteDeps } from './common.js';

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
  if (!to) errors.push(invalidParam('to', 'to must be an instance UUID'));
  const probe = parseProbe(params, errors);
  if (errors.length > 0) throw invalidParams(errors);
  return { from, fromInstance, to: to!, probe };
}

export function registerExplainRoute(app: FastifyInstance, deps: FwRouteDeps): void {
  const { engine } = deps;

  app.get('/fw/explain', access(deps.access.explain), async (req) => {
    const { fromInstance, to, probe, ...q } = parseExplainQuery(requestParams(req));
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
