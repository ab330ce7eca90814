/**
 * The cross-field checks of network writes (pure): address families against the subnet,
 * the provision range and gateway inside it, subnet overlap between networks, and which
 * fields an update may not change. Wording from sdc-napi lib/models/network.js.
 */
import { type FieldError, type NapiError, duplicateParam, invalidParam, invalidParams, usedBy } from '../../rest/errors.js';
import { broadcastAddress, compareIps, familyOf, type Subnet, subnetContains, subnetOf, subnetRouterAnycast, subnetsOverlap, subnetText } from '../ipmath.js';
import { routeFamily } from './params.js';
import type { NetworkRecord } from './records.js';
import { textOf } from '../../rest/validate.js';

/** The address parameters of a network create or update, as validated. */
export interface AddressParams {
  gateway?: string | undefined;
  resolvers?: string[] | undefined;
  routes?: Record<string, string> | undefined;
  provision_start_ip?: string | undefined;
  provision_end_ip?: string | undefined;
}

/** Addresses of the family check, collected as NAPI's after-validators would. */
export function familyErrors(clean: AddressParams, subnet: Subnet): FieldError[] {
  const fam = subnet.family;
  const errs: FieldError[] = [];
  const gw = clean.gateway;
  if (gw && familyOf(gw) !== fam) errs.push(invalidParam('gateway', `gateway should match subnet type (${fam})`));
  const resolvers = clean.resolvers ?? [];
  const badRes = resolvers.filter((r) => familyOf(r) !== fam);
  if (badRes.length > 0) {
    errs.push(invalidParam('resolvers', `resolvers should match subnet type (${fam})`, { invalid: badRes }));
  }
  const routes = clean.routes ?? {};
  const badDst = Object.keys(routes).filter((d) => routeFamily(d) !== fam);
  if (badDst.length > 0) {
    errs.push(invalidParam('routes', `addresses used for routing should match subnet type (${fam})`, { invalid: badDst }));
  }
  const start = clean.provision_start_ip;
  const end = clean.provision_end_ip;
  if (start && end && familyOf(start) !== familyOf(end)) {
    errs.push(
      invalidParam(
        'provision_start_ip, provision_end_ip',
        'provision_start_ip and provision_end_ip must be both IPv4 or both IPv6 addresses',
      ),
    );
  }
  if (start && familyOf(start) !== fam) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip and subnet must both be IPv4 or IPv6 addresses'));
  }
  if (end && familyOf(end) !== fam) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip and subnet must both be IPv4 or IPv6 addresses'));
  }
  const badHop = Object.entries(routes).filter(([d, h]) => h !== 'linklocal' && routeFamily(d) !== familyOf(h));
  if (badDst.length === 0 && badHop.length > 0) {
    errs.push(
      invalidParam('routes', 'address family of route and next-hop address should match', {
        invalid: badHop.map(([d]) => d),
      }),
    );
  }
  return errs;
}

/** Provision range and gateway inside the subnet, not the broadcast, start < end. */
export function rangeErrors(subnet: Subnet, start: string, end: string, gateway: string | undefined): FieldError[] {
  const errs: FieldError[] = [];
  let s: string | undefined = start;
  let e: string | undefined = end;
  if (!subnetContains(subnet, start)) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip cannot be outside subnet'));
    s = undefined;
  }
  if (!subnetContains(subnet, end)) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip cannot be outside subnet'));
    e = undefined;
  }
  if (gateway && !subnetContains(subnet, gateway)) {
    errs.push(invalidParam('gateway', 'gateway cannot be outside subnet'));
  }
  const bcast = broadcastAddress(subnet);
  if (bcast !== undefined && s === bcast) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip cannot be the broadcast address'));
    s = undefined;
  }
  if (bcast !== undefined && e === bcast) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip cannot be the broadcast address'));
    e = undefined;
  }
  if (s && e && compareIps(s, e) >= 0) {
    errs.push(invalidParam('provision_end_ip', 'provision_start_ip must be before provision_end_ip'));
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip must be before provision_end_ip'));
  }
  return errs;
}

/**
 * IPv6 neighbour discovery: the Subnet-Router anycast address (the subnet's own address)
 * is answered by every router on the link (Linux adds it on forwarding interfaces), so
 * neither the gateway nor the first provisionable address may be it.
 */
export function anycastErrors(subnet: Subnet, addrs: { start?: string | undefined; gateway?: string | undefined }): FieldError[] {
  const anycast = subnetRouterAnycast(subnet);
  if (anycast === undefined) return [];
  const errs: FieldError[] = [];
  const is = (ip: string | undefined) => ip !== undefined && familyOf(ip) === 'ipv6' && compareIps(ip, anycast) === 0;
  if (is(addrs.gateway)) errs.push(invalidParam('gateway', 'gateway cannot be the subnet-router anycast address'));
  if (is(addrs.start)) errs.push(invalidParam('provision_start_ip', 'provision_start_ip cannot be the subnet-router anycast address'));
  return errs;
}

export function overlapError(conflicts: NetworkRecord[]): NapiError {
  const errs = conflicts
    .map((n) => usedBy('subnet', 'network', n.uuid, 'subnet overlaps with another network'))
    .sort((a, b) => (a.id! < b.id! ? -1 : a.id! > b.id! ? 1 : 0));
  return invalidParams(errs);
}

/** Which existing networks a new subnet may not overlap (NAPI-203, TRITON-297). */
export function overlapping(all: NetworkRecord[], subnet: Subnet, self: string, fabricVnet: number | undefined): NetworkRecord[] {
  return all.filter((n) => {
    if (n.uuid === self) return false;
    if (fabricVnet !== undefined) return n.fabric === true && n.vnet_id === fabricVnet && subnetsOverlap(subnetOf(n.subnet), subnet);
    return !n.fabric && subnetsOverlap(subnetOf(n.subnet), subnet);
  });
}

export function nameInUse(): NapiError {
  return invalidParams([duplicateParam('name')], 'name is in use by another network');
}

/** Fields an update may only repeat (see sameValue). */
export const IMMUTABLE_FIELDS = ['fabric', 'family', 'gateway_provisioned', 'internet_nat', 'nic_tag', 'vlan_id', 'vnet_id', 'subnet'] as const;

/** Whether an update's value for an immutable field is the stored one. */
export function sameValue(field: string, sent: unknown, rec: NetworkRecord): boolean {
  const stored = (rec as unknown as Record<string, unknown>)[field];
  switch (field) {
    case 'fabric':
    case 'gateway_provisioned':
    case 'internet_nat': {
      const b = sent === true || sent === 'true' ? true : sent === false || sent === 'false' ? false : sent;
      return b === (stored ?? (field === 'fabric' ? false : undefined));
    }
    case 'vlan_id':
    case 'vnet_id':
      return textOf(sent) === textOf(stored);
    case 'subnet': {
      const r = typeof sent === 'string' ? sent.trim() : sent;
      try {
        return subnetText(subnetOf(textOf(r))) === stored;
      } catch {
        return false;
      }
    }
    default:
      return sent === stored;
  }
}
