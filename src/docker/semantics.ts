/**
 * Docker's container semantics as the firewall's Docker routes take them, read from what
 * the daemon says a container is (inspect): its links on a network, its exposed ports,
 * its published ports (the container's side: the node's side is ./publish.ts). Pure.
 */
import type { DockerContainer } from './engine.js';
import type { PortBinding, Proto } from './protocol.js';

export interface DockerLinkRef {
  /** The target container's name (as the linker wrote it, without the leading '/'). */
  target: string;
  alias: string;
}

/** Container name without the leading slash. */
export function containerName(c: DockerContainer): string {
  return (c.Name ?? '').replace(/^\//, '');
}

/**
 * The links a container has on a network. User-defined networks keep them per network
 * ("db:alias" or "db"); the legacy form in HostConfig.Links ("/db:/web/alias") is read
 * too. Duplicates (same alias) are dropped.
 */
export function linksOn(c: DockerContainer, networkName: string): DockerLinkRef[] {
  const out = new Map<string, DockerLinkRef>();
  for (const l of c.NetworkSettings?.Networks?.[networkName]?.Links ?? []) {
    const [target, alias] = l.split(':');
    if (target) out.set(alias || target, { target, alias: alias || target });
  }
  for (const l of c.HostConfig?.Links ?? []) {
    const [t, a] = l.split(':');
    const target = t?.replace(/^\//, '');
    const alias = a?.split('/').pop();
    if (target && alias) out.set(alias, { target, alias });
  }
  return [...out.values()];
}

function portKey(k: string): { port: number; proto: Proto } | undefined {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(k);
  if (!m) return undefined;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535 ? { port, proto: (m[2] ?? 'tcp') as Proto } : undefined;
}

/** Exposed ports ("5432/tcp"), from the image and --expose (and -p, which exposes). */
export function exposedPorts(c: DockerContainer): string[] {
  const out = Object.keys(c.Config?.ExposedPorts ?? {}).flatMap((k) => {
    const p = portKey(k);
    return p ? [`${p.port}/${p.proto}`] : [];
  });
  return [...new Set(out)].sort();
}

/** The container's side of its published ports ("80/tcp"): the firewall lets anyone reach those. */
export function publishedPorts(c: DockerContainer): string[] {
  const out: string[] = [];
  for (const [k, list] of Object.entries(c.HostConfig?.PortBindings ?? {})) {
    const p = portKey(k);
    if (p && (list?.length ?? 0) > 0) out.push(`${p.port}/${p.proto}`);
  }
  if (c.HostConfig?.PublishAllPorts) out.push(...exposedPorts(c));
  return [...new Set(out)].sort();
}

/** Port bindings as Docker passes them to a driver (explicit host ports only). */
export function portBindings(c: DockerContainer): PortBinding[] {
  const out: PortBinding[] = [];
  for (const [k, list] of Object.entries(c.HostConfig?.PortBindings ?? {})) {
    const p = portKey(k);
    if (!p) continue;
    for (const b of list ?? []) {
      const hostPort = Number(b.HostPort);
      if (Number.isInteger(hostPort) && hostPort >= 1 && hostPort <= 65535) {
        out.push({ ...p, hostIp: b.HostIp && b.HostIp !== '0.0.0.0' ? b.HostIp : '', hostPort });
      }
    }
  }
  return out;
}

/**
 * The firewall's container spec (POST /fw/docker/containers/:uuid) for a container's
 * endpoint on a network. `targetUuid` resolves a link target's name to its instance on
 * the same network (undefined: not there, the link is left out until it is).
 */
export function containerSpec(
  c: DockerContainer,
  net: { name: string; owner: string; fabricUuid: string; endpointId: string },
  targetUuid: (name: string) => string | undefined,
): Record<string, unknown> {
  const links = linksOn(c, net.name).flatMap((l) => {
    const uuid = targetUuid(l.target);
    return uuid ? [{ target: uuid, alias: /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(l.alias) ? l.alias : 'link' }] : [];
  });
  return {
    owner_uuid: net.owner,
    name: `${containerName(c) || 'container'}.${net.endpointId.slice(0, 12)}`,
    network: net.fabricUuid,
    links,
    exposed_ports: exposedPorts(c),
    published_ports: publishedPorts(c),
  };
}
