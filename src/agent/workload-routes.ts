/**
 * The workload-attachment routes of the agent's API (./workloads.ts; shapes in
 * ./workload-api.ts):
 *   POST   /workloads              attach (idempotent per key): WorkloadAttachRequest -> WorkloadAttachment
 *   GET    /workloads[?scope=S]    every attachment this node holds (for garbage collection)
 *   GET    /workloads/:key         one attachment (404 when unknown)
 *   GET    /workloads/:key/check   {ok, problems[]}: is it still as it was made?
 *   DELETE /workloads/:key         release (unknown key or a second release: released=false)
 *   GET    /health                 does this agent reach its controller?
 * Keys travel URL-encoded in the path. Errors: {code, message}; code names the reason
 * (InvalidRequest, NetworkNotFound, SubnetFull, ControllerUnreachable, Conflict, …).
 */
import type { FastifyInstance } from 'fastify';
import { AgentError } from './agent.js';
import { WorkloadRequestError, keyProblem, parseAttachRequest, scopeProblem } from './workload-api.js';
import type { WorkloadManager } from './workloads.js';

function keyParam(params: unknown): string {
  const key = (params as { key?: unknown }).key;
  const problem = keyProblem(key);
  if (problem) throw new AgentError(400, problem, 'InvalidRequest');
  return key as string;
}

export function registerWorkloadRoutes(app: FastifyInstance, workloads: WorkloadManager): void {
  app.post('/workloads', async (req) => {
    let parsed;
    try {
      parsed = parseAttachRequest(req.body);
    } catch (err) {
      if (err instanceof WorkloadRequestError) throw new AgentError(400, err.message, 'InvalidRequest');
      throw err;
    }
    return workloads.attach(parsed);
  });
  app.get('/workloads', async (req) => {
    const scope = (req.query as { scope?: unknown }).scope;
    if (scope !== undefined) {
      const problem = scopeProblem(scope);
      if (problem) throw new AgentError(400, problem, 'InvalidRequest');
    }
    return workloads.list(scope as string | undefined);
  });
  app.get('/workloads/:key', async (req) => {
    const key = keyParam(req.params);
    const found = workloads.get(key);
    if (!found) throw new AgentError(404, `no workload attachment ${key} on this node`, 'NotFound');
    return found;
  });
  app.get('/workloads/:key/check', async (req) => workloads.check(keyParam(req.params)));
  app.delete('/workloads/:key', async (req) => workloads.release(keyParam(req.params)));
  app.get('/health', async () => workloads.health());
}
