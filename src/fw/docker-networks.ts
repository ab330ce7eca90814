/**
 * Docker networks as the firewall and the Docker plugin see them: one record per fabric
 * network a Docker daemon uses through rhumb's plugin, keyed by the fabric network's uuid.
 *
 *   icc    inter-container communication on that network (Docker's `-o icc=false`):
 *          every node's daemon must agree, the first one to create the network sets it
 *   nodes  compute nodes whose daemon has the network: removing it on one node never
 *          touches the fabric network while another node still has it
 *   docker_ids  each node's Docker id for it (a daemon removing a network names only that id)
 *   managed / vlan_created
 *          whether the plugin created the fabric network (and its VLAN): only then does
 *          the last node's removal delete them; an adopted network is left alone
 *
 * The rules icc wants are in ./docker.ts (containers carry the network's uuid). The
 * functions here work inside a caller's transaction, with no HTTP.
 */
import { type FieldError, forbidden, invalidParam, invalidParams, notFound, unknownParams } from '../rest/errors.js';
import type { Params } from '../rest/validate.js';
import type { Tx } from '../store/txn.js';
import { boolParam } from './api-params.js';
import { isValidUuid } from './lang/index.js';
import { DOCKER_NETWORK_PREFIX, dockerNetworkKey } from './registry.js';

export interface DockerNetworkRecord {
  /** The fabric network's uuid. */
  uuid: string;
  owner_uuid: string;
  icc: boolean;
  /** cn_uuids whose Docker daemon has the network, sorted. */
  nodes: string[];
  /** cn_uuid -> that daemon's network id. */
  docker_ids: Record<string, string>;
  /** The plugin created the fabric network (delete it with the last node). */
  managed: boolean;
  /** The plugin created the network's fabric VLAN too. */
  vlan_created: boolean;
}

const JOIN_PARAMS = new Set(['uuid', 'owner_uuid', 'icc', 'node', 'docker_id', 'managed', 'vlan_created']);

export function dockerNetworkNotFound(): ReturnType<typeof notFound> {
  return notFound('Docker network not found');
}

function uuidParam(field: string, v: unknown, errors: FieldError[], message: string): string | undefined {
  if (typeof v === 'string' && isValidUuid(v)) return v.toLowerCase();
  errors.push(invalidParam(field, message));
  return undefined;
}

/**
 * PUT /fw/docker/networks/:uuid — a node's daemon has the network: creates the record or
 * adds the node. A node joining an existing record must agree on owner and icc (the
 * network exists with another setting: 422 naming it). Returns the record.
 */
export async function joinDockerNetwork(tx: Tx, uuid: string, params: Params): Promise<DockerNetworkRecord> {
  const errors: FieldError[] = [];
  const unknown = Object.keys(params).filter((k) => !JOIN_PARAMS.has(k));
  if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  const net = uuidParam('uuid', uuid, errors, 'Invalid network UUID');
  const owner = uuidParam('owner_uuid', params.owner_uuid, errors, 'Invalid owner UUID');
  const node = uuidParam('node', params.node, errors, 'Invalid node UUID');
  const icc = boolParam('icc', params.icc, errors) ?? true;
  const managed = boolParam('managed', params.managed, errors) ?? false;
  const vlanCreated = boolParam('vlan_created', params.vlan_created, errors) ?? false;
  const dockerId = params.docker_id;
  if (dockerId !== undefined && !(typeof dockerId === 'string' && /^[0-9a-f]{64}$/.test(dockerId))) errors.push(invalidParam('docker_id', 'docker_id must be 64 hex digits'));
  if (errors.length > 0 || !net || !owner || !node) throw invalidParams(errors);
  const base = await tx.getJson<DockerNetworkRecord>(dockerNetworkKey(net));
  if (base && base.owner_uuid !== owner) throw forbidden('network belongs to another owner');
  if (base && base.icc !== icc) {
    throw invalidParams([invalidParam('icc', `the network already exists with icc=${base.icc} on node(s) ${base.nodes.join(', ') || '(none)'}`)]);
  }
  const ids = { ...(base?.docker_ids ?? {}), ...(typeof dockerId === 'string' ? { [node]: dockerId } : {}) };
  const rec: DockerNetworkRecord = base
    ? { ...base, nodes: [...new Set([...base.nodes, node])].sort(), docker_ids: ids }
    : { uuid: net, owner_uuid: owner, icc, nodes: [node], docker_ids: ids, managed, vlan_created: managed && vlanCreated };
  tx.putJson(dockerNetworkKey(net), rec);
  return rec;
}

/**
 * DELETE /fw/docker/networks/:uuid/nodes/:node — that node's daemon removed the network.
 * The record goes with its last node; returns what is left (nodes empty: it went).
 */
export async function leaveDockerNetwork(tx: Tx, uuid: string, node: string): Promise<DockerNetworkRecord> {
  const base = await tx.getJson<DockerNetworkRecord>(dockerNetworkKey(uuid));
  if (!base) throw dockerNetworkNotFound();
  const { [node]: _gone, ...ids } = base.docker_ids ?? {};
  const rec = { ...base, nodes: base.nodes.filter((n) => n !== node), docker_ids: ids };
  if (rec.nodes.length === 0) tx.del(dockerNetworkKey(uuid));
  else tx.putJson(dockerNetworkKey(uuid), rec);
  return rec;
}

/** icc of every Docker network record of an owner (read through tx). */
export async function ownerNetworkIcc(tx: Tx, owner: string): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  for (const kv of await tx.range({ prefix: DOCKER_NETWORK_PREFIX })) {
    const r = JSON.parse(kv.value) as DockerNetworkRecord;
    if (r.owner_uuid === owner) out.set(r.uuid, r.icc);
  }
  return out;
}

/** GET /fw/docker/networks?node=UUID: the records naming that node. */
export async function nodeDockerNetworks(tx: Tx, node: string): Promise<DockerNetworkRecord[]> {
  return (await tx.range({ prefix: DOCKER_NETWORK_PREFIX }))
    .map((kv) => JSON.parse(kv.value) as DockerNetworkRecord)
    .filter((r) => r.nodes.includes(node));
}

/** GET /fw/docker/networks/:uuid (404 when absent). */
export async function loadDockerNetwork(tx: Tx, uuid: string): Promise<DockerNetworkRecord> {
  const rec = await tx.getJson<DockerNetworkRecord>(dockerNetworkKey(uuid));
  if (!rec) throw dockerNetworkNotFound();
  return rec;
}
