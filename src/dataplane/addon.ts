/**
 * Loads build/Release/rhumb_native.node once, from the source tree (tsx) or from dist/
 * (compiled). Each typed face of the addon declares the part it uses.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let loaded: Record<string, unknown> | undefined;

function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '../../build/Release/rhumb_native.node'), join(here, '../../../build/Release/rhumb_native.node')];
}

/** The addon, or a clear error when it was not built. */
export function nativeAddon<T>(): T {
  if (!loaded) {
    const path = candidates().find((p) => existsSync(p));
    if (!path) throw new Error(`rhumb native addon not built (looked for ${candidates().join(', ')}); run npm run build:native`);
    loaded = createRequire(import.meta.url)(path) as Record<string, unknown>;
  }
  return loaded as T;
}

/** Whether the addon is built and exports these functions (an older build may lack them). */
export function nativeHas(...names: string[]): boolean {
  try {
    const a = nativeAddon<Record<string, unknown>>();
    return names.every((n) => typeof a[n] === 'function');
  } catch {
    return false;
  }
}

/** An error the addon rejected with: code is the errno name (or ERR_NFT), errno negative as in Node. */
export interface NativeError extends Error {
  code: string;
  errno?: number;
  /** The step that failed (RTM_NEWLINK, open netns, …). */
  syscall?: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).code === 'string';
}
