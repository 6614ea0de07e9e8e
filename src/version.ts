import { readFileSync } from 'node:fs';

/** Finds package.json from src/ (tsx) or dist/src/ (compiled). */
function readVersion(): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'mozhno' && pkg.version) return pkg.version;
    } catch {
      // not at this depth; try the next
    }
  }
  return '0.0.0';
}

/** The package version, sent as `User-Agent: mozhno-webhooks/<version>`. */
export const VERSION = readVersion();
