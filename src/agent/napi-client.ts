/**
 * The slice of the NAPI REST API the agent uses: its own NICs, the underlay network, and
 * registering its underlay NIC. Plain fetch with a timeout; NAPI errors become
 * NapiRequestError with the status and the server's message.
 */

export interface ApiNic {
  mac: string;
  owner_uuid: string;
  belongs_to_uuid: string;
  belongs_to_type: string;
  cn_uuid?: string;
  ip?: string;
  netmask?: string;
  /** IPv6 NICs: their network's subnet (the prefix length; NAPI has no IPv6 netmask). */
  subnet?: string;
  gateway?: string;
  mtu?: number;
  nic_tag?: string;
  vlan_id?: number;
  network_uuid?: string;
  routes?: Record<string, string>;
  fabric?: boolean;
  internet_nat?: boolean;
  underlay?: boolean;
  state?: string;
  allow_mac_spoofing?: boolean;
  allow_ip_spoofing?: boolean;
}

export interface ApiNetwork {
  uuid: string;
  name: string;
  subnet: string;
  nic_tag: string;
  vlan_id: number;
  mtu?: number;
  gateway?: string;
  routes?: Record<string, string>;
  fabric?: boolean;
  vnet_id?: number;
  owner_uuids?: string[];
  resolvers?: string[];
}

export class NapiRequestError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    const msg = typeof body === 'object' && body && 'message' in body ? String((body as { message: unknown }).message) : String(body);
    super(`${method} ${path}: ${status} ${msg}`);
    this.name = 'NapiRequestError';
  }
}

export class NapiClient {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly timeoutMs = 10_000,
    /** fetch carrying the node's credentials (TLS, token); default the global fetch. */
    private readonly doFetch: typeof fetch = (input, init) => fetch(input, init),
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /** signal: the caller may drop the request (a held long-poll no longer wanted). */
  async request<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await this.doFetch(this.base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    if (res.status >= 400) throw new NapiRequestError(method, path, res.status, parsed);
    return parsed as T;
  }

  getNic(mac: string): Promise<ApiNic> {
    return this.request('GET', `/nics/${encodeURIComponent(mac)}`);
  }

  /**
   * Every NIC matching the filter (pages through with limit/offset). timeoutMs per page:
   * short right after this node's address changed (the agent has dropped its connections
   * from the old address by then; should one still hang, the caller asks again).
   */
  async listNics(filter: Record<string, string | boolean>, opts: { timeoutMs?: number } = {}): Promise<ApiNic[]> {
    const out: ApiNic[] = [];
    const limit = 1000;
    for (let offset = 0; ; offset += limit) {
      const q = new URLSearchParams({ ...Object.fromEntries(Object.entries(filter).map(([k, v]) => [k, String(v)])), limit: String(limit), offset: String(offset) });
      const page = await this.request<ApiNic[]>('GET', `/nics?${q}`, undefined, opts.timeoutMs ?? this.timeoutMs);
      out.push(...page);
      if (page.length < limit) return out;
    }
  }

  listNetworks(filter: Record<string, string>): Promise<ApiNetwork[]> {
    return this.request('GET', `/networks?${new URLSearchParams(filter)}`);
  }

  /** One network; with provisionableBy, NAPI answers 403 when that owner may not use it. */
  getNetwork(uuid: string, provisionableBy?: string): Promise<ApiNetwork> {
    const q = provisionableBy ? `?${new URLSearchParams({ provisionable_by: provisionableBy })}` : '';
    return this.request('GET', `/networks/${encodeURIComponent(uuid)}${q}`);
  }

  createNic(params: Record<string, unknown>): Promise<ApiNic> {
    return this.request('POST', '/nics', params);
  }

  async deleteNic(mac: string): Promise<void> {
    await this.request('DELETE', `/nics/${encodeURIComponent(mac)}`);
  }

  /** GET /ping with its own (short) timeout: is the controller there and its store healthy? */
  ping(timeoutMs = 2000): Promise<{ healthy?: boolean; status?: string }> {
    return this.request('GET', '/ping', undefined, timeoutMs);
  }
}

/** True for a failure to reach the controller at all (refused, unreachable, timed out). */
export function isUnreachable(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return err instanceof TypeError || name === 'TimeoutError' || name === 'AbortError';
}

/** The message of a NAPI error with its per-field reasons (NAPI's errors[]), for people. */
export function napiErrorText(err: NapiRequestError): string {
  const body = err.body as { message?: unknown; errors?: Array<{ field?: unknown; message?: unknown }> } | undefined;
  const base = typeof body?.message === 'string' ? body.message : `HTTP ${err.status}`;
  const fields = Array.isArray(body?.errors) ? body.errors.map((e) => `${String(e.field)}: ${String(e.message)}`) : [];
  return fields.length > 0 ? `${base} (${fields.join('; ')})` : base;
}

/** The vnet id a fabric NIC's nic_tag carries ('sdc_overlay/4242'), or undefined. */
export function vnetFromNicTag(tag: string | undefined): number | undefined {
  const m = tag ? /^[A-Za-z0-9_]+\/(\d+)$/.exec(tag) : null;
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isInteger(n) && n >= 0 && n <= 0xffffff ? n : undefined;
}
