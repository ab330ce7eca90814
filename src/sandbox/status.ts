/** `rhumb sandbox status`: what the state file records, checked against what runs. */
import Table from 'cli-table3';
import { SandboxInputError } from './plan.js';
import { rest } from './rest.js';
import { DEFAULT_STATE_DIR, type SandboxState, loadState } from './state.js';
import { isSameProcess } from './system.js';

export interface NodeStatus {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
  agent: 'running' | 'not running';
  api?: string;
  vnets?: number[];
  nics?: number;
}

export interface InstanceStatus {
  name: string;
  owner: string;
  node: string;
  ip?: string;
  mac?: string;
  ns: string;
  uuid: string;
}

export interface SandboxStatus {
  stateDir: string;
  runId: string;
  phase: SandboxState['phase'];
  createdAt: string;
  backend: string;
  store: string;
  controller?: SandboxState['controller'] & { running: boolean; answering: boolean };
  /** With --auth: the admin token's file (the CLI's --token-file; the console asks for the token). */
  adminTokenFile?: string;
  nodes: NodeStatus[];
  instances: InstanceStatus[];
  processes: Array<{ role: string; pid: number; running: boolean; log: string }>;
  /** Everything recorded runs and answers. */
  healthy: boolean;
}

export async function sandboxStatus(stateDir = DEFAULT_STATE_DIR): Promise<SandboxStatus> {
  const s = await loadState(stateDir);
  if (!s) throw new SandboxInputError(`no sandbox is up: nothing is recorded in ${stateDir}`);
  const processes = s.processes.map((p) => ({ role: p.role, pid: p.pid, running: isSameProcess(p.pid, p.startTime), log: p.log }));
  const running = (role: string) => processes.find((p) => p.role === role)?.running ?? false;
  let answering = false;
  if (s.controller) answering = await rest(s.controller.rest, 'GET', '/ping', undefined, 2000).then(() => true, () => false);
  const nodes = await Promise.all(
    s.nodes.map(async (n): Promise<NodeStatus> => {
      const base: NodeStatus = { name: n.name, ns: n.ns, uuid: n.uuid, ip: n.ip, agent: running(`agent-${n.name}`) ? 'running' : 'not running', ...(n.agentApi ? { api: n.agentApi } : {}) };
      if (!n.agentApi || base.agent !== 'running') return base;
      const st = await rest<{ vnets: number[]; nics: unknown[] }>(n.agentApi, 'GET', '/status', undefined, 2000).catch(() => undefined);
      return st ? { ...base, vnets: st.vnets, nics: st.nics.length } : base;
    }),
  );
  const instances = s.instances.map((i) => ({ name: i.name, owner: i.owner, node: i.node, ns: i.ns, uuid: i.uuid, ...(i.ip ? { ip: i.ip } : {}), ...(i.mac ? { mac: i.mac } : {}) }));
  return {
    stateDir: s.stateDir,
    runId: s.runId,
    phase: s.phase,
    createdAt: s.createdAt,
    backend: s.options.backend,
    store: s.options.store,
    ...(s.controller ? { controller: { ...s.controller, running: running('controller'), answering } } : {}),
    ...(s.adminTokenFile ? { adminTokenFile: s.adminTokenFile } : {}),
    nodes,
    instances,
    processes,
    healthy: s.phase === 'up' && answering && processes.every((p) => p.running) && nodes.every((n) => n.vnets !== undefined),
  };
}

function table(head: string[], rows: string[][]): string {
  const t = new Table({ head, style: { head: [], border: [], compact: true }, chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '  ', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' } });
  t.push(...rows);
  return t.toString();
}

export function formatStatus(st: SandboxStatus): string {
  const lines: string[] = [];
  lines.push(`sandbox ${st.phase}${st.phase === 'up' ? (st.healthy ? ', healthy' : ', DEGRADED') : ''} (made ${st.createdAt}; ${st.nodes.length} nodes, ${st.backend} backend, ${st.store} store; state in ${st.stateDir})`);
  if (st.controller) {
    lines.push(`controller  REST ${st.controller.rest}  SVP ${st.controller.svp}  (${st.controller.running ? 'running' : 'NOT RUNNING'}${st.controller.running && !st.controller.answering ? ', not answering' : ''})`);
    lines.push(`console     ${st.controller.console}`);
  }
  if (st.adminTokenFile) lines.push(`auth        the controller asks who calls: the admin token is in ${st.adminTokenFile}`);
  lines.push('nodes:');
  lines.push(table(['node', 'underlay', 'namespace', 'agent', 'vnets', 'NICs'], st.nodes.map((n) => [n.name, n.ip, n.ns, n.agent, n.vnets?.join(',') ?? '-', n.nics === undefined ? '-' : String(n.nics)])));
  lines.push('instances:');
  lines.push(table(['instance', 'owner', 'node', 'ip', 'namespace'], st.instances.map((i) => [i.name, i.owner, i.node, i.ip ?? '-', i.ns])));
  const down = st.processes.filter((p) => !p.running);
  for (const p of down) lines.push(`not running: ${p.role} (pid ${p.pid}); its log: ${p.log}`);
  return lines.join('\n');
}

/** What to try next, printed after `up`. */
export function formatHints(st: SandboxStatus, cmd = 'npx rhumb'): string {
  const [a, b] = [st.instances.find((i) => i.name === 'web1'), st.instances.find((i) => i.name === 'web2')];
  const dirFlag = st.stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${st.stateDir}`;
  const lines = ['try:'];
  if (a && b?.ip) lines.push(`  ${cmd} sandbox shell${dirFlag} ${a.name} -- ping -c 3 ${b.ip}     # ${a.node} -> ${b.node} over VXLAN`);
  if (a) lines.push(`  ${cmd} sandbox shell${dirFlag} ${a.name}                        # a shell inside the instance`);
  if (st.controller) {
    const token = st.adminTokenFile ? ` --token-file ${st.adminTokenFile}` : '';
    lines.push(`  ${cmd} nic list --api ${st.controller.rest}${token}`);
    lines.push(`  open ${st.controller.console} in a browser on this machine${st.adminTokenFile ? ` (sign in with the token in ${st.adminTokenFile})` : ''}`);
  }
  lines.push(`  ${cmd} sandbox status${dirFlag}`);
  lines.push(`  ${cmd} sandbox down${dirFlag}`);
  return lines.join('\n');
}
