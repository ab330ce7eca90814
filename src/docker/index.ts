/**
 * The Docker plugin as the agent runs it (`rhumb agent --docker-plugin ADDR`): the
 * network and IPAM driver (./driver.ts) served on ADDR (./server.ts), the Docker Engine
 * API it reads (./engine.ts), the event follower (./watcher.ts) and the node's
 * publications (./publish.ts).
 */
import type { NapiClient } from '../agent/napi-client.js';
import type { WorkloadManager } from '../agent/workloads.js';
import type { IngressEntry } from '../fw/ingress.js';
import type { Logger } from '../log/index.js';
import { type DriverAgent, DockerDriver } from './driver.js';
import { DockerEngine, parseDockerHost } from './engine.js';
import { Publisher } from './publish.js';
import { type PluginAddress, PluginServer } from './server.js';
import { DockerWatcher } from './watcher.js';

export interface DockerPluginOptions {
  address: PluginAddress;
  dockerHost: string;
  pluginName: string;
  agent: DriverAgent;
  workloads: WorkloadManager;
  api: Pick<NapiClient, 'request' | 'getNic'>;
  logger: Logger;
  /** Between sweeps for attachments Docker no longer has (ms). */
  sweepIntervalMs?: number;
  /** Called after the node's publications changed. */
  onPublishedChange?: () => void;
}

export interface RunningDockerPlugin {
  url: string;
  driver: DockerDriver;
  watcher: DockerWatcher;
  /** The node's publications (-p), for the controller's `fw explain`. */
  ingress(): IngressEntry[];
  close(): Promise<void>;
}

export async function startDockerPlugin(o: DockerPluginOptions): Promise<RunningDockerPlugin> {
  const engine = new DockerEngine(parseDockerHost(o.dockerHost));
  const publisher = new Publisher((msg) => o.logger.info(msg), o.onPublishedChange, (mac, link) => o.agent.publicationLink?.(mac, link) ?? Promise.resolve());
  await publisher.adopt().catch((err: Error) => o.logger.warn(`publications left by a previous agent: ${err.message}`));
  const driver = new DockerDriver({ agent: o.agent, workloads: o.workloads, api: o.api, engine, publisher, pluginName: o.pluginName, logger: o.logger });
  const server = await PluginServer.listen(o.address, driver.handlers(), {
    onError: (method, err) => o.logger.warn(`docker ${method}: ${err.message}`),
  });
  const watcher = new DockerWatcher({
    driver,
    engine,
    api: o.api,
    pluginName: o.pluginName,
    logger: o.logger,
    ...(o.sweepIntervalMs !== undefined ? { sweepIntervalMs: o.sweepIntervalMs } : {}),
  });
  watcher.start();
  return {
    url: server.url,
    driver,
    watcher,
    ingress: () => publisher.ingress((mac) => o.agent.attachment(mac)),
    async close() {
      await server.close();
      await watcher.stop();
    },
  };
}
