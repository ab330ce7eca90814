/**
 * The one logger shape of rhumb: pino. A process makes one root logger (the controller
 * hands it to fastify too) and gives each component a child carrying its name, so every
 * line says where it came from. Components log objects first, message second:
 * `log.warn({ err: err.message }, 'feed failed')`.
 */
import { pino } from 'pino';

/**
 * What components need of a logger: pino's level methods and child(). Both a pino logger
 * and fastify's `app.log` are one.
 */
export interface Logger extends pino.BaseLogger {
  child(bindings: pino.Bindings): Logger;
}

export interface LoggerOptions {
  /** pino level name; default 'info'. */
  level?: string;
  /** File descriptor the JSON lines go to: 1 (stdout, pino's default) or 2 (stderr). */
  fd?: 1 | 2;
  /** Bindings on every line (e.g. { name: 'rhumb-agent' }). */
  base?: pino.Bindings;
}

/** A root logger writing JSON lines synchronously to stdout or stderr. */
export function createLogger(opts: LoggerOptions = {}): pino.Logger {
  return pino(
    { level: opts.level ?? 'info', ...(opts.base ? { base: { pid: process.pid, ...opts.base } } : {}) },
    pino.destination({ fd: opts.fd ?? 1, sync: true }),
  );
}

/** A logger that drops everything (for components built without one). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
