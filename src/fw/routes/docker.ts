/**
 * Docker containers (../docker.ts has the semantics):
 *
 *   POST   /fw/docker/containers/:uuid   container spec → rules, link env, hosts
 *   GET    /fw/docker/containers/:uuid   spec, rules, env, hosts (recomputed now)
 *   DELETE /fw/docker/containers/:uuid
 *
 * Docker networks (../docker-networks.ts), written by the Docker plugin in node agents:
 *
 *   PUT    /fw/docker/networks/:uuid              {owner_uuid, node, docker_id, icc, managed, vlan_created}
 *                                                 a node's daemon has the network
 *   GET    /fw/docker/networks?node=UUID          the networks that node's daemon has
 *   GET    /fw/docker/networks/:uuid
 *   DELETE /fw/docker/networks/:uuid/nodes/:node  that node's daemon removed it; answers
 *                                                 what is left (no nodes: the record went)
 */
import type { FastifyInstance } from 'fastify';
import { requestParams } from '../../rest/http.js';
import { transact } from '../../store/txn.js';
import { requireUuid } from '../api-params.js';
import { joinDockerNetwork, leaveDockerNetwork, loadDockerNetwork, nodeDockerNetworks } from '../docker-networks.js';
import {
  type ContainerView,
  type DockerContainerRecord,
  containerNotFound,
  containerView,
  reconcileOwner,
  removeContainer,
  saveContainer,
} from '../docker.js';
import { DOCKER_CONTAINER_PREFIX, dockerContainerKey } from '../registry.js';
import { access } from '../../rest/access.js';
import { type FwRouteDeps, allRules } from './common.js';

export function registerDockerRoutes(app: FastifyInstance, deps: FwRouteDeps): void {
  const { store, engine } = deps;

  /** The view on the engine's current addresses and the stored containers and rules. */
  async function view(record: DockerContainerRecord): Promise<ContainerView> {
    await engine.sync();
    const containers = (await store.range({ prefix: DOCKER_CONTAINER_PREFIX })).kvs
      .map((kv) => JSON.parse(kv.value) as DockerContainerRecord)
      .filter((c) => c.owner_uuid === record.owner_uuid);
    const rules = await allRules(store);
    return containerView(record, containers, rules, (uuid) => engine.world.getInstance(uuid)?.addresses ?? []);
  }

  app.post('/fw/docker/containers/:uuid', access(deps.access.containerWrite), async (req) => {
    const { uuid: raw, ...params } = requestParams(req);
    const uuid = typeof raw === 'string' ? raw.toLowerCase() : '';
    const { value } = await transact(store, (tx) => saveContainer(tx, uuid, params));
    return view(value);
  });

  app.get('/fw/docker/containers/:uuid', access(deps.access.container), async (req) => {
    const uuid = requireUuid('uuid', requestParams(req).uuid, 'Invalid container UUID');
    const kv = await store.get(dockerContainerKey(uuid));
    if (!kv) throw containerNotFound();
    return view(JSON.parse(kv.value) as DockerContainerRecord);
  });

  app.delete('/fw/docker/containers/:uuid', access(deps.access.container), async (req, reply) => {
    const uuid = requireUuid('uuid', requestParams(req).uuid, 'Invalid container UUID');
    await transact(store, (tx) => removeContainer(tx, uuid));
    reply.status(204);
    return reply.send();
  });

  app.put('/fw/docker/networks/:uuid', async (req) => {
    const { uuid: raw, ...params } = requestParams(req);
    const uuid = typeof raw === 'string' ? raw.toLowerCase() : '';
    const { value } = await transact(store, async (tx) => {
      const rec = await joinDockerNetwork(tx, uuid, params);
      await reconcileOwner(tx, rec.owner_uuid);
      return rec;
    });
    return value;
  });

  app.get('/fw/docker/networks', async (req) => {
    const node = requireUuid('node', requestParams(req).node, 'Invalid node UUID');
    const { value } = await transact(store, (tx) => nodeDockerNetworks(tx, node));
    return value;
  });

  app.get('/fw/docker/networks/:uuid', async (req) => {
    const uuid = requireUuid('uuid', requestParams(req).uuid, 'Invalid network UUID');
    const { value } = await transact(store, (tx) => loadDockerNetwork(tx, uuid));
    return value;
  });

  app.delete('/fw/docker/networks/:uuid/nodes/:node', async (req) => {
    const p = requestParams(req);
    const uuid = requireUuid('uuid', p.uuid, 'Invalid network UUID');
    const node = requireUuid('node', p.node, 'Invalid node UUID');
    const { value } = await transact(store, async (tx) => {
      const rec = await leaveDockerNetwork(tx, uuid, node);
      await reconcileOwner(tx, rec.owner_uuid);
      return rec;
    });
    return value;
  });
}
