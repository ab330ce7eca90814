/**
 * A MemoryStore whose first range() read is overtaken: once that read has its answer,
 * more commits land (`meanwhile`) and history is compacted up to them, so a watch that
 * resumes after the read fails with CompactedError and its reader has to reload, as a
 * replica that fell behind does.
 */
import { MemoryStore } from '../../src/store/memory.js';
import type { RangeOptions, RangeResult } from '../../src/store/types.js';

export class CompactingStore extends MemoryStore {
  /** range() calls so far: only the first is overtaken. */
  ranges = 0;

  /** meanwhile: the commits that land after the first read (on this store). */
  constructor(private readonly meanwhile: (store: MemoryStore) => Promise<unknown>) {
    super();
  }

  override async range(opts: RangeOptions): Promise<RangeResult> {
    const res = await super.range(opts);
    if (this.ranges++ === 0) {
      await this.meanwhile(this);
      await this.compact(await this.revision());
    }
    return res;
  }
}
