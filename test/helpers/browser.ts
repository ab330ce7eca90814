/**
 * A real headless browser for tests: Debian's chromium (scripts/setup.sh installs it with
 * the test packages) driven by playwright-core from npm — never a browser playwright
 * downloads itself. Each launch gets a fresh profile directory, removed at close.
 *
 *   const skip = browserSkipReason();
 *   const browser = await launchBrowser();
 *   const page = await browser.context.newPage();
 *   await browser.close();
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { REPO_ROOT } from './processes.js';

export const CHROMIUM = process.env.RHUMB_CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests cannot run here, or false. */
export function browserSkipReason(): string | false {
  return existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (Debian package chromium; scripts/setup.sh installs it)`;
}

export interface LaunchedBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<LaunchedBrowser> {
  const profile = await mkdtemp(join(tmpdir(), `rhumb-chromium-${process.pid}-`));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** test-artifacts/<suite>/ in the repository (gitignored): screenshots tests leave for a human. */
export async function artifactDir(suite: string): Promise<string> {
  const dir = join(REPO_ROOT, 'test-artifacts', suite);
  await mkdir(dir, { recursive: true });
  return dir;
}
