/**
 * Runs async jobs one at a time, in the order they were queued. A job that fails does
 * not stop the ones queued after it: each caller gets its own job's outcome.
 * The agent's backends serialise their link changes with one (two attaches must not both
 * create a vnet), and the state files their saves.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job, job);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
