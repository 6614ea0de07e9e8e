import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig, WORKER_THREAD_POOL_SIZE, type Config } from '../../src/config.js';
import { QUEUE_NAME } from '../../src/delivery/queue.js';
import { startTestApi, type TestApi } from '../support/api.js';
import { REDIS_URL } from '../support/env.js';
import { API_STOP_DEADLINE_MS } from '../../src/api-server.js';

/**
 * Static checks of the deployment files (Dockerfile, docker/entrypoint.sh,
 * docker-compose.yml, .env.example, deploy/kubernetes) against the code they run:
 * what a broken file would get wrong — a command naming no entry point, an
 * environment variable config.ts never reads, a probe on a path the api does not
 * serve, a grace period shorter than a delivery, a KEDA list BullMQ never writes.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = 'deploy/kubernetes';
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** Seconds a worker needs beyond WEBHOOK_TIMEOUT_MS to save outcomes and close connections. */
const GRACE_MARGIN_S = 10;
/** The api's health paths (SPEC §7): liveness and readiness. */
const HEALTHZ = '/healthz';
const READYZ = '/readyz';
/** The processes of the image, by entrypoint.sh's first argument. */
const LONG_RUNNING_ROLES = ['api', 'worker'];
const ALL_ROLES = ['api', 'worker', 'migrate', 'cli'];
/** SPEC §8's variables; config.ts may read more (WORKER_METRICS_PORT, LOG_LEVEL), never fewer. */
const SPEC_VARIABLES = [
  'DATABASE_URL', 'REDIS_URL', 'PORT', 'WEBHOOK_TIMEOUT_MS', 'WEBHOOK_ALLOWED_CIDRS', 'WEBHOOK_CA_FILE', 'WORKER_CONCURRENCY',
  'DELIVERY_RETENTION', 'WEBHOOK_MAX_IN_FLIGHT', 'PLAN_LIMITS', 'ADMIN_USER', 'ADMIN_PASSWORD', 'QUEUE_PREFIX',
];

// ---------------------------------------------------------------------------
// What the code defines

/** Every variable loadConfig reads, observed by handing it an environment that records each lookup. */
function configVariables(): Set<string> {
  const seen = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_target, key) {
      if (typeof key === 'string') seen.add(key);
      return undefined;
    },
  });
  loadConfig(env);
  return seen;
}
const CONFIG_VARIABLES = configVariables();

/** entrypoint.sh: role → the compiled file it runs, e.g. api → dist/src/api.js. */
function entrypointRoles(): Map<string, string> {
  const roles = new Map<string, string>();
  for (const match of read('docker/entrypoint.sh').matchAll(/^\s*([a-z-]+)\)\s*(?:shift;\s*|export [A-Z_]+="[^"]*";\s*)?exec node (\S+)/gm)) {
    roles.set(match[1]!, match[2]!);
  }
  return roles;
}
const ROLES = entrypointRoles();

const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir?: string } };
const buildConfig = JSON.parse(read('tsconfig.build.json')) as { include: string[]; compilerOptions: { rootDir?: string; outDir?: string } };
const OUT_DIR = (buildConfig.compilerOptions.outDir ?? tsconfig.compilerOptions.outDir ?? '').replace(/^\.\//, '').replace(/\/$/, '');
const pkg = JSON.parse(read('package.json')) as { version: string; engines: { node: string }; scripts: Record<string, string>; dependencies: Record<string, string> };

/** The TypeScript source `npm run build` compiles to `distFile`, or null when it compiles nothing there. */
function sourceOf(distFile: string): string | null {
  if (!distFile.startsWith(`${OUT_DIR}/`) || !distFile.endsWith('.js')) return null;
  const source = `${distFile.slice(OUT_DIR.length + 1, -'.js'.length)}.ts`;
  const included = buildConfig.include.some((dir) => source.startsWith(`${dir.replace(/\/$/, '')}/`));
  return included && existsSync(join(ROOT, source)) ? source : null;
}

// ---------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}

function dockerfileStages(): Instruction[][] {
  const text = read('Dockerfile').replace(/\\\r?\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(trimmed) ?? [];
    if (keyword.toUpperCase() === 'FROM') stages.push([]);
    stages.at(-1)?.push({ keyword: keyword.toUpperCase(), args });
  }
  return stages;
}

function jsonOrShell(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
}

// ---------------------------------------------------------------------------
// docker-compose.yml

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, any>; volumes?: Record<string, unknown> };
const composeText = read('docker-compose.yml');

function dotenv(path: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of read(path).split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) vars.set(match[1]!, match[2]!.trim().replace(/^(['"])(.*)\1$/, '$2'));
  }
  return vars;
}
const ENV_EXAMPLE = dotenv('.env.example');

/** Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`, with `.env` values. */
function interpolate(value: string, vars: Map<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}/g, (whole, name: string | undefined, colon: string, fallback: string | undefined) => {
    if (whole === '$$') return '$';
    const set = vars.get(name!);
    if (fallback === undefined) return set ?? '';
    if (set === undefined || (colon === ':' && set === '')) return fallback;
    return set;
  });
}

function serviceEnv(service: any): Record<string, string> {
  const raw = service.environment ?? {};
  const entries: [string, unknown][] = Array.isArray(raw) ? raw.map((item: string) => [item.split('=')[0]!, item.split('=').slice(1).join('=')]) : Object.entries(raw);
  return Object.fromEntries(entries.map(([name, value]) => [name, interpolate(String(value ?? ''), ENV_EXAMPLE)]));
}

/** The services that run the mozhno image: built here, or using the image a built service is tagged with. */
const APP_SERVICES = Object.entries(compose.services).filter(([, s]) => s.build !== undefined || String(s.image ?? '').split(':')[0] === composeImageRepo());

function composeImageRepo(): string {
  const built = Object.values(compose.services).find((s) => s.build !== undefined);
  return String(built?.image ?? '').split(':')[0]!;
}

function composeDuration(value: string | number): number {
  if (typeof value === 'number') return value / 1e9; // bare numbers are nanoseconds in the compose spec
  const match = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(value);
  if (!match || value === '') throw new Error(`not a compose duration: ${value}`);
  return Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0) + Number(match[4] ?? 0) / 1000;
}

/** The URL a healthcheck fetches, from its test command. */
function healthcheckUrl(service: any): URL {
  const test = ([] as string[]).concat(service.healthcheck?.test ?? []).join(' ');
  const match = /https?:\/\/[^\s'"`)]+/.exec(test);
  if (!match) throw new Error(`no URL in healthcheck ${test}`);
  return new URL(match[0]);
}

function containerPort(mapping: unknown): number {
  if (typeof mapping === 'object' && mapping !== null) return Number((mapping as { target: unknown }).target);
  const parts = interpolate(String(mapping), ENV_EXAMPLE).replace(/\/(tcp|udp)$/, '').split(':');
  return Number(parts.at(-1));
}

// ---------------------------------------------------------------------------
// Kubernetes: a small kustomize (resources, images, JSON 6902 patches) — enough for these files.

type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };

interface Rendering {
  dir: string;
  objects: K8sObject[];
  files: string[];
  kustomizations: { dir: string; body: any }[];
}

function render(dir: string): Rendering {
  const body = parse(read(join(dir, 'kustomization.yaml')));
  const rendering: Rendering = { dir, objects: [], files: [join(dir, 'kustomization.yaml')], kustomizations: [{ dir, body }] };
  for (const resource of body.resources ?? []) {
    const path = join(dir, resource);
    if (!existsSync(join(ROOT, path))) throw new Error(`${dir}/kustomization.yaml lists ${resource}, which does not exist`);
    if (statSync(join(ROOT, path)).isDirectory()) {
      const base = render(path);
      rendering.objects.push(...base.objects);
      rendering.files.push(...base.files);
      rendering.kustomizations.push(...base.kustomizations);
    } else {
      rendering.files.push(path);
      for (const doc of parseAllDocuments(read(path))) {
        if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]!.message}`);
        const object = doc.toJS() as K8sObject | null;
        if (object) rendering.objects.push(object);
      }
    }
  }
  for (const image of body.images ?? []) {
    for (const container of rendering.objects.flatMap(containersOf)) {
      const [name, tag] = splitImage(container.image);
      const newTag: string | undefined = image.newTag ?? tag;
      if (name === image.name) container.image = newTag ? `${image.newName ?? name}:${newTag}` : (image.newName ?? name);
    }
  }
  for (const { target, patch } of body.patches ?? []) {
    const matching = rendering.objects.filter((o) => (!target.kind || o.kind === target.kind) && (!target.name || o.metadata.name === target.name));
    if (matching.length === 0) throw new Error(`${dir}: a patch targets ${target.kind}/${target.name}, which is not rendered`);
    for (const object of matching) for (const op of parse(patch) as { op: string; path: string; value?: unknown }[]) applyPatch(object, op);
  }
  return rendering;
}

function applyPatch(object: any, { op, path, value }: { op: string; path: string; value?: unknown }): void {
  const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = keys.pop()!;
  const parent = keys.reduce((node, key) => node?.[key], object);
  if (parent === undefined) throw new Error(`patch path ${path} not found in ${object.kind}/${object.metadata.name}`);
  if (op === 'remove') {
    if (!(last in parent)) throw new Error(`patch removes ${path}, absent from ${object.kind}/${object.metadata.name}`);
    delete parent[last];
  } else if (op === 'add' || op === 'replace') {
    parent[last] = value;
  } else {
    throw new Error(`patch op ${op} is not understood by this test's renderer`);
  }
}

/** `registry:5000/name:tag@digest` → [`registry:5000/name`, `tag`]; a registry's port is no tag. */
function splitImage(image: string): [string, string | undefined] {
  const match = /^(.*?)(?::(\w[\w.-]*))?(?:@.*)?$/.exec(image)!;
  return [match[1]!, match[2]];
}

function podSpecOf(object: K8sObject): any {
  return ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(object.kind) ? object.spec.template.spec : undefined;
}

function containersOf(object: K8sObject): any[] {
  const pod = podSpecOf(object);
  return pod ? [...(pod.initContainers ?? []), ...(pod.containers ?? [])] : [];
}

function byKind(rendering: Rendering, kind: string): K8sObject[] {
  return rendering.objects.filter((o) => o.kind === kind);
}

function workload(rendering: Rendering, kind: string, role: string): { object: K8sObject; container: any } {
  const found = rendering.objects.filter((o) => o.kind === kind && containersOf(o).some((c) => (c.args ?? [])[0] === role));
  expect(found, `${rendering.dir}: one ${kind} running "${role}"`).toHaveLength(1);
  const object = found[0]!;
  return { object, container: containersOf(object).find((c) => (c.args ?? [])[0] === role) };
}

/** The environment a container gets: envFrom ConfigMaps and Secrets, then env. */
function containerEnv(rendering: Rendering, container: any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
    const object = rendering.objects.find((o) => o.kind === kind && o.metadata.name === ref.name);
    expect(object, `${rendering.dir}: envFrom ${kind} ${ref.name} exists`).toBeDefined();
    Object.assign(env, object!.data && kind === 'Secret' ? decodeSecret(object!.data) : object!.data, object!.stringData);
  }
  for (const { name, value } of container.env ?? []) env[name] = String(value ?? '');
  return env;
}

function decodeSecret(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

function namedPort(container: any, port: string | number): number {
  if (typeof port === 'number') return port;
  const found = (container.ports ?? []).find((p: any) => p.name === port);
  if (!found) throw new Error(`container ${container.name} has no port named ${port}`);
  return found.containerPort;
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

const ENTRY_POINTS = ['base', 'keda', 'hpa'].map((name) => `${K8S}/${name}`);
const RENDERINGS = Object.fromEntries(ENTRY_POINTS.map((dir) => [dir.split('/').at(-1)!, render(dir)])) as Record<'base' | 'keda' | 'hpa', Rendering>;

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFilesUnder(path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
}

// ===========================================================================

describe('what the checks rely on', () => {
  it('loadConfig reads every variable of SPEC §8', () => {
    for (const name of SPEC_VARIABLES) expect(CONFIG_VARIABLES, name).toContain(name);
  });

  it('starts workers with a libuv pool of WORKER_THREAD_POOL_SIZE threads unless told otherwise, as npm run worker does', () => {
    const size = String(WORKER_THREAD_POOL_SIZE);
    expect(read('docker/entrypoint.sh')).toMatch(new RegExp(`^\\s*worker\\) export UV_THREADPOOL_SIZE="\\$\\{UV_THREADPOOL_SIZE:-${size}\\}"; exec node `, 'm'));
    expect(pkg.scripts.worker).toMatch(new RegExp(`^UV_THREADPOOL_SIZE=\\$\\{UV_THREADPOOL_SIZE:-${size}\\} tsx `));
  });

  it('entrypoint.sh runs api, worker, migrate and cli, each a file `npm run build` produces from the source its npm script runs', () => {
    expect([...ROLES.keys()].sort()).toEqual([...ALL_ROLES].sort());
    expect(buildConfig.compilerOptions.rootDir, 'tsconfig.build.json keeps the source layout under dist/').toBe('.');
    for (const [role, distFile] of ROLES) {
      const source = sourceOf(distFile);
      expect(source, `${role} → ${distFile} is compiled from a source in tsconfig.build.json`).not.toBeNull();
      // The image runs what `npm run <role>` runs, compiled.
      expect(pkg.scripts[role], `npm script ${role}`).toMatch(new RegExp(`\\b${source!.replace(/[.]/g, '\\.')}(\\s|$)`));
    }
  });
});

describe('Dockerfile', () => {
  const stages = dockerfileStages();
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const argsOf = (stage: Instruction[], keyword: string) => stage.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds on Node 22 slim, which package.json engines accepts', () => {
    for (const stage of stages) expect(stage[0]!.args).toMatch(/^node:22-slim\b/);
    const [, major = '0', minor = '0'] = /(\d+)(?:\.(\d+))?/.exec(pkg.engines.node) ?? [];
    expect(22 > Number(major) || (22 === Number(major) && Number(minor) === 0), `engines.node ${pkg.engines.node} admits Node 22`).toBe(true);
  });

  it('the build stage copies everything tsconfig.build.json compiles, installs and runs the build', () => {
    const copied = argsOf(build, 'COPY').flatMap((a) => jsonOrShell(a).filter((p) => !p.startsWith('--')).slice(0, -1));
    for (const needed of [...buildConfig.include, 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(copied, `build stage COPY ${needed}`).toContain(needed);
    }
    expect(argsOf(build, 'RUN').join('\n')).toMatch(/npm ci\b/);
    expect(argsOf(build, 'RUN').join('\n')).toMatch(/npm run build\b/);
  });

  it('puts the dashboard files where the compiled dashboard looks for them', () => {
    expect(existsSync(join(ROOT, 'src/dashboard/public/index.html'))).toBe(true);
    const both = [...argsOf(build, 'RUN'), ...argsOf(runtime, 'COPY')].join('\n');
    expect(both).toMatch(new RegExp(`src/dashboard/public/?\\s+(\\./)?${OUT_DIR}/src/dashboard/public`));
  });

  it('the runtime stage installs production dependencies only, copies compiled output, runs as a numeric non-root user', () => {
    expect(argsOf(runtime, 'RUN').join('\n')).toMatch(/npm ci\b[^\n]*--omit=dev/);
    expect(argsOf(runtime, 'COPY').join('\n')).toMatch(new RegExp(`--from=\\w+\\s+/app/${OUT_DIR}\\s`));
    expect(argsOf(runtime, 'WORKDIR').at(-1), 'entrypoint.sh runs dist/… relative to /app').toBe('/app');
    const copiesSource = argsOf(runtime, 'COPY').some((a) => /(^|\s)(src|workers|migrations)(\/|\s)/.test(a) && !/public/.test(a));
    expect(copiesSource, 'no TypeScript sources at run time').toBe(false);
    expect(argsOf(runtime, 'RUN').join('\n')).not.toMatch(/\btsx\b/);
    const user = argsOf(runtime, 'USER').at(-1) ?? '0';
    expect(user, 'numeric, so runAsNonRoot can verify it').toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
  });

  it('ENTRYPOINT is entrypoint.sh and the default command one of its roles', () => {
    const copy = argsOf(runtime, 'COPY').map(jsonOrShell).find((parts) => parts.includes('docker/entrypoint.sh'));
    expect(copy, 'runtime stage copies docker/entrypoint.sh').toBeDefined();
    const destination = copy!.at(-1)!;
    const entrypoint = jsonOrShell(argsOf(runtime, 'ENTRYPOINT').at(-1) ?? '[]');
    const onPath = /^\/usr\/(local\/)?bin\/[^/]+$/.test(destination);
    expect(onPath ? [destination, destination.split('/').at(-1)] : [destination], 'ENTRYPOINT runs the copied entrypoint.sh').toContain(entrypoint[0]);
    expect(ROLES.keys()).toContain(jsonOrShell(argsOf(runtime, 'CMD').at(-1) ?? '[]')[0]);
    expect(statSync(join(ROOT, 'docker/entrypoint.sh')).mode & 0o111, 'entrypoint.sh is executable').not.toBe(0);
  });

  it('.dockerignore keeps out nothing the build copies', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const sources = stages.flatMap((s) => argsOf(s, 'COPY').filter((a) => !a.includes('--from')).flatMap((a) => jsonOrShell(a).filter((p) => !p.startsWith('--')).slice(0, -1)));
    for (const source of sources) {
      const hit = ignored.find((pattern) => !pattern.startsWith('!') && (source === pattern || source.startsWith(`${pattern.replace(/\/$/, '')}/`) || new RegExp(`^${pattern.replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`).test(source)));
      expect(hit, `${source} is excluded by .dockerignore`).toBeUndefined();
    }
  });
});

describe('docker-compose.yml', () => {
  const configOf = (name: string): Readonly<Config> => loadConfig(serviceEnv(compose.services[name]));

  it('runs the image as migrate, api and worker, each command a role of entrypoint.sh', () => {
    const commands = Object.fromEntries(APP_SERVICES.map(([name, s]) => [name, ([] as string[]).concat(s.command ?? [])]));
    for (const [name, command] of Object.entries(commands)) expect(ROLES.keys(), `${name}: command ${command.join(' ')}`).toContain(command[0]);
    for (const role of ['migrate', ...LONG_RUNNING_ROLES]) expect(Object.values(commands).map((c) => c[0]), `a service runs ${role}`).toContain(role);
  });

  it('passes only variables config.ts reads, each valid with .env.example', () => {
    for (const [name, service] of APP_SERVICES) {
      const env = serviceEnv(service);
      for (const variable of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      expect(() => loadConfig(env), name).not.toThrow();
      // FOO: ${BAR} is a slip: each app variable takes the .env variable of its own name.
      for (const [variable, value] of Object.entries(service.environment ?? {})) {
        const only = /^\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}$/.exec(String(value));
        if (only) expect(only[1], `${name}: ${variable}: ${String(value)}`).toBe(variable);
      }
    }
  });

  it('DATABASE_URL and REDIS_URL reach the compose postgres and redis, with the password postgres is given', () => {
    const postgresEnv = serviceEnv(compose.services.postgres);
    for (const [name] of APP_SERVICES) {
      const config = configOf(name);
      const database = new URL(config.databaseUrl);
      expect(compose.services[database.hostname], `${name}: DATABASE_URL host`).toBeDefined();
      expect(decodeURIComponent(database.username)).toBe(postgresEnv.POSTGRES_USER);
      expect(decodeURIComponent(database.password), `${name}: DATABASE_URL password`).toBe(postgresEnv.POSTGRES_PASSWORD);
      expect(database.pathname.slice(1)).toBe(postgresEnv.POSTGRES_DB ?? postgresEnv.POSTGRES_USER);
      expect(compose.services[new URL(config.redisUrl).hostname], `${name}: REDIS_URL host`).toBeDefined();
    }
  });

  it('starts in order: databases healthy → migrate completed → api and workers', () => {
    const dependsOn = (name: string): Record<string, string> =>
      Object.fromEntries(Object.entries(compose.services[name].depends_on ?? {}).map(([dep, v]) => [dep, (v as { condition?: string }).condition ?? 'service_started']));
    const migrateService = APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === 'migrate')![0];
    const dbHost = new URL(configOf(migrateService).databaseUrl).hostname;
    expect(dependsOn(migrateService)[dbHost]).toBe('service_healthy');
    expect(compose.services[migrateService].restart ?? 'no', 'migrate runs once').toBe('no');
    for (const [name, service] of APP_SERVICES.filter(([, s]) => LONG_RUNNING_ROLES.includes(([] as string[]).concat(s.command)[0]!))) {
      expect(dependsOn(name)[migrateService], name).toBe('service_completed_successfully');
      expect(dependsOn(name)[new URL(configOf(name).redisUrl).hostname], name).toBe('service_healthy');
      expect(service.restart, name).toBeDefined();
    }
    for (const name of Object.keys(compose.services)) {
      for (const [dep, condition] of Object.entries(dependsOn(name))) {
        if (condition === 'service_healthy') expect(compose.services[dep]?.healthcheck, `${name} waits for ${dep} healthy`).toBeDefined();
      }
    }
  });

  it('Redis keeps every key and its jobs across restarts; data lives in volumes', () => {
    const command = ([] as string[]).concat(compose.services.redis.command).join(' ');
    expect(command).toMatch(/--maxmemory-policy\s+noeviction/);
    expect(command).toMatch(/--appendonly\s+yes/);
    for (const name of ['postgres', 'redis']) {
      const volumes = (compose.services[name].volumes ?? []).map((v: string | { source: string }) => (typeof v === 'string' ? v.split(':')[0] : v.source));
      expect(volumes.some((v: string) => v in (compose.volumes ?? {})), `${name} keeps its data in a named volume`).toBe(true);
    }
  });

  it('the api listens where its port is published and its healthcheck asks', () => {
    const [name, api] = APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === 'api')!;
    const port = configOf(name).port;
    expect((api.ports ?? []).map(containerPort), 'published container port').toContain(port);
    const url = healthcheckUrl(api);
    expect(Number(url.port)).toBe(port);
    expect([HEALTHZ, READYZ]).toContain(url.pathname);
  });

  it('workers: two replicas, nothing that two replicas would collide on, healthcheck on WORKER_METRICS_PORT, grace above the delivery timeout', () => {
    const [name, worker] = APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === 'worker')!;
    const config = configOf(name);
    expect(worker.deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    expect(config.workerMetricsPort, 'WORKER_METRICS_PORT 0 turns /healthz off').toBeGreaterThan(0);
    const url = healthcheckUrl(worker);
    expect(Number(url.port)).toBe(config.workerMetricsPort);
    expect(url.pathname).toBe(HEALTHZ);
    expect(worker.stop_grace_period, 'default 10 s would cut deliveries').toBeDefined();
    expect(composeDuration(worker.stop_grace_period)).toBeGreaterThanOrEqual(config.webhookTimeoutMs / 1000 + GRACE_MARGIN_S);
  });

  it('the api: a grace period longer than its own stop deadline, in compose and on Kubernetes (after the preStop pause)', () => {
    const api = APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === 'api')![1];
    expect(api.stop_grace_period, 'default 10 s would cut the api\'s stop short').toBeDefined();
    expect(composeDuration(api.stop_grace_period) * 1000).toBeGreaterThan(API_STOP_DEADLINE_MS);
    const { object, container } = workload(RENDERINGS.base, 'Deployment', 'api');
    const grace = (object.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    const preStop = container.lifecycle?.preStop?.exec?.command as string[] | undefined;
    const pause = preStop?.[0] === 'sleep' ? Number(preStop[1]) * 1000 : 0;
    expect(grace - pause).toBeGreaterThan(API_STOP_DEADLINE_MS);
  });

  it('.env.example names only variables compose uses, each a config variable or one compose itself needs', () => {
    const interpolated = new Set([...composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!));
    expect(ENV_EXAMPLE.size).toBeGreaterThan(0);
    for (const name of ENV_EXAMPLE.keys()) {
      // compose reads .env only to fill ${…}: a name it never uses does nothing.
      expect(interpolated, `.env.example ${name} is used by docker-compose.yml`).toContain(name);
      const inAppEnv = APP_SERVICES.some(([, s]) => name in (s.environment ?? {}));
      if (inAppEnv) expect(CONFIG_VARIABLES, name).toContain(name);
    }
    for (const name of interpolated) expect(CONFIG_VARIABLES.has(name) || ENV_EXAMPLE.has(name), `${name} is documented in .env.example or read by config.ts`).toBe(true);
  });
});

describe('Kubernetes manifests', () => {
  it('every manifest is in a kustomization, namespace-agnostic, and named', () => {
    const listed = new Set(Object.values(RENDERINGS).flatMap((r) => r.files));
    for (const file of yamlFilesUnder(K8S)) expect(listed, `${file} is listed in a kustomization`).toContain(file);
    for (const rendering of Object.values(RENDERINGS)) {
      const seen = new Set<string>();
      for (const object of rendering.objects) {
        const id = `${object.kind}/${object.metadata?.name}`;
        expect(object.apiVersion && object.kind && object.metadata?.name, `${rendering.dir}: ${id}`).toBeTruthy();
        expect(object.metadata.namespace, `${id} names no namespace`).toBeUndefined();
        expect(seen.has(id), `${rendering.dir}: ${id} once`).toBe(false);
        seen.add(id);
      }
      for (const { body, dir } of rendering.kustomizations) expect(body.namespace, `${dir} sets no namespace`).toBeUndefined();
    }
  });

  it('every pod runs the one image of docker-compose.yml, at the package version', () => {
    for (const rendering of Object.values(RENDERINGS)) {
      const images = new Set(rendering.objects.flatMap(containersOf).map((c) => c.image));
      expect(images.size, `${rendering.dir}: ${[...images].join(', ')}`).toBe(1);
      const [name, tag] = splitImage([...images][0]!);
      expect(name.split('/').at(-1)).toBe(composeImageRepo());
      expect(tag, 'a release tag, not latest').toBe(pkg.version);
    }
  });

  it('runs migrate as a Job, api and worker as Deployments, with the commands compose uses', () => {
    const rendering = RENDERINGS.base;
    const composeCommand = (role: string) => ([] as string[]).concat(APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === role)![1].command);
    for (const [kind, role] of [['Job', 'migrate'], ['Deployment', 'api'], ['Deployment', 'worker']] as const) {
      const { object, container } = workload(rendering, kind, role);
      expect(container.command, `${object.metadata.name}: keep the image's ENTRYPOINT`).toBeUndefined();
      expect(ROLES.keys()).toContain(container.args[0]);
      expect(container.args).toEqual(composeCommand(role));
    }
    const job = workload(rendering, 'Job', 'migrate').object;
    expect(['Never', 'OnFailure']).toContain(job.spec.template.spec.restartPolicy);
  });

  it('passes only variables config.ts reads, and each pod\'s configuration is valid', () => {
    for (const rendering of Object.values(RENDERINGS)) {
      for (const object of byKind(rendering, 'ConfigMap')) for (const name of Object.keys(object.data ?? {})) expect(CONFIG_VARIABLES, `ConfigMap ${object.metadata.name}: ${name}`).toContain(name);
      for (const object of rendering.objects.filter((o) => podSpecOf(o))) {
        for (const container of containersOf(object)) {
          const env = containerEnv(rendering, container);
          for (const name of Object.keys(env)) expect(CONFIG_VARIABLES, `${object.metadata.name}: ${name}`).toContain(name);
          expect(() => loadConfig(env), object.metadata.name).not.toThrow();
        }
      }
    }
  });

  it('the api: probes on /readyz and /healthz at the port it listens on, a Service that reaches it', () => {
    const rendering = RENDERINGS.base;
    const { object, container } = workload(rendering, 'Deployment', 'api');
    const port = loadConfig(containerEnv(rendering, container)).port;
    // Redis is reported, not required: a Redis outage must not take every api pod out of service, as the api still takes changes then.
    expect(container.readinessProbe?.httpGet?.path, 'readiness: PostgreSQL reachable and migrated').toBe(`${READYZ}?optional=redis`);
    expect(container.livenessProbe?.httpGet?.path, 'liveness: the process answers (not its dependencies)').toBe(HEALTHZ);
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe].filter(Boolean)) {
      expect([HEALTHZ, READYZ, `${READYZ}?optional=redis`]).toContain(probe.httpGet.path);
      expect(namedPort(container, probe.httpGet.port)).toBe(port);
    }
    const scrape = object.spec.template.metadata.annotations?.['prometheus.io/port'];
    if (scrape) expect(Number(scrape)).toBe(port);
    const services = byKind(rendering, 'Service').filter((s) => matches(s.spec.selector, object.spec.template.metadata.labels));
    expect(services).toHaveLength(1);
    for (const servicePort of services[0]!.spec.ports) expect(namedPort(container, servicePort.targetPort ?? servicePort.port)).toBe(port);
  });

  it('the worker: liveness on /healthz at WORKER_METRICS_PORT, grace period above WEBHOOK_TIMEOUT_MS', () => {
    for (const rendering of Object.values(RENDERINGS)) {
      const { object, container } = workload(rendering, 'Deployment', 'worker');
      const config = loadConfig(containerEnv(rendering, container));
      expect(config.workerMetricsPort, 'WORKER_METRICS_PORT 0 turns /healthz off').toBeGreaterThan(0);
      expect(container.livenessProbe?.httpGet?.path).toBe(HEALTHZ);
      for (const probe of [container.livenessProbe, container.startupProbe, container.readinessProbe].filter(Boolean)) {
        expect(probe.httpGet.path).toBe(HEALTHZ);
        expect(namedPort(container, probe.httpGet.port)).toBe(config.workerMetricsPort);
      }
      const scrape = object.spec.template.metadata.annotations?.['prometheus.io/port'];
      if (scrape) expect(Number(scrape)).toBe(config.workerMetricsPort);
      const grace = object.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      expect(grace, `terminationGracePeriodSeconds vs WEBHOOK_TIMEOUT_MS ${config.webhookTimeoutMs}`).toBeGreaterThanOrEqual(config.webhookTimeoutMs / 1000 + GRACE_MARGIN_S);
    }
  });

  it('pods run as non-root on a read-only root filesystem with a writable /tmp, with resources set', () => {
    for (const object of RENDERINGS.base.objects.filter((o) => podSpecOf(o))) {
      const pod = podSpecOf(object);
      for (const container of containersOf(object)) {
        const id = `${object.metadata.name}/${container.name}`;
        const security = { ...pod.securityContext, ...container.securityContext };
        expect(security.runAsNonRoot, id).toBe(true);
        if (security.runAsUser !== undefined) expect(security.runAsUser, id).toBeGreaterThan(0);
        expect(security.readOnlyRootFilesystem, id).toBe(true);
        expect(security.allowPrivilegeEscalation, id).toBe(false);
        const tmp = (container.volumeMounts ?? []).find((m: any) => m.mountPath === '/tmp');
        expect(tmp, `${id} mounts /tmp`).toBeDefined();
        expect((pod.volumes ?? []).find((v: any) => v.name === tmp.name)?.emptyDir, `${id}: /tmp is an emptyDir`).toBeDefined();
        expect(container.resources?.requests?.cpu, id).toBeDefined();
        expect(container.resources?.requests?.memory, id).toBeDefined();
        expect(container.resources?.limits?.memory, id).toBeDefined();
      }
    }
  });

  it('selectors select: Deployments their pods, PodDisruptionBudgets the api and the workers', () => {
    const rendering = RENDERINGS.base;
    for (const deployment of byKind(rendering, 'Deployment')) {
      expect(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels), deployment.metadata.name).toBe(true);
    }
    for (const role of LONG_RUNNING_ROLES) {
      const { object } = workload(rendering, 'Deployment', role);
      const budgets = byKind(rendering, 'PodDisruptionBudget').filter((p) => matches(p.spec.selector.matchLabels, object.spec.template.metadata.labels));
      expect(budgets, `a PodDisruptionBudget covers ${object.metadata.name}`).toHaveLength(1);
    }
  });

  it('autoscaling: base has none, keda a ScaledObject only, hpa an HPA only — never both — and both drop the fixed replicas', () => {
    const autoscalers = (r: Rendering) => r.objects.filter((o) => o.kind === 'ScaledObject' || o.kind === 'HorizontalPodAutoscaler');
    const worker = (r: Rendering) => workload(r, 'Deployment', 'worker').object;
    expect(autoscalers(RENDERINGS.base)).toEqual([]);
    expect(worker(RENDERINGS.base).spec.replicas).toBeGreaterThanOrEqual(2);
    for (const [name, kind] of [['keda', 'ScaledObject'], ['hpa', 'HorizontalPodAutoscaler']] as const) {
      const rendering = RENDERINGS[name];
      const found = autoscalers(rendering);
      expect(found.map((o) => o.kind), name).toEqual([kind]);
      expect(found[0]!.spec.scaleTargetRef.name).toBe(worker(rendering).metadata.name);
      expect(found[0]!.spec.scaleTargetRef.kind ?? 'Deployment').toBe('Deployment');
      expect(worker(rendering).spec.replicas, `${name}: the autoscaler owns replicas`).toBeUndefined();
    }
  });

  it('KEDA watches the BullMQ lists of the configured QUEUE_PREFIX, with per-pod targets a pod can reach', () => {
    const rendering = RENDERINGS.keda;
    const { container } = workload(rendering, 'Deployment', 'worker');
    const config = loadConfig(containerEnv(rendering, container));
    const [scaledObject] = byKind(rendering, 'ScaledObject');
    const triggers = scaledObject!.spec.triggers as { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
    const lists = triggers.map((t) => t.metadata.listName);
    expect(lists).toContain(`${config.queuePrefix}:${QUEUE_NAME}:wait`);
    for (const trigger of triggers) {
      expect(['redis', 'redis-cluster']).toContain(trigger.type);
      expect([`${config.queuePrefix}:${QUEUE_NAME}:wait`, `${config.queuePrefix}:${QUEUE_NAME}:active`]).toContain(trigger.metadata.listName);
      const target = Number(trigger.metadata.listLength);
      expect(target).toBeGreaterThan(0);
      // A pod never holds more active jobs than WORKER_CONCURRENCY: a higher target never scales up.
      if (trigger.metadata.listName!.endsWith(':active')) expect(target).toBeLessThanOrEqual(config.workerConcurrency);
      if (trigger.authenticationRef) {
        const auth = byKind(rendering, 'TriggerAuthentication').find((a) => a.metadata.name === trigger.authenticationRef!.name);
        expect(auth, `TriggerAuthentication ${trigger.authenticationRef.name}`).toBeDefined();
        for (const ref of auth!.spec.secretTargetRef ?? []) {
          const secret = byKind(rendering, 'Secret').find((s) => s.metadata.name === ref.name);
          expect({ ...secret?.data, ...secret?.stringData }, `Secret ${ref.name} key ${ref.key}`).toHaveProperty(ref.key);
        }
      }
    }
    expect(scaledObject!.spec.minReplicaCount ?? 0, 'keep workers for deliveries arriving from zero').toBeGreaterThanOrEqual(1);
  });

  it.skipIf(!hasKubectl())('kubectl kustomize builds each entry point into what these checks read', () => {
    for (const [name, rendering] of Object.entries(RENDERINGS)) {
      const output = execFileSync('kubectl', ['kustomize', join(ROOT, rendering.dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const built = parseAllDocuments(output).map((d) => d.toJS() as K8sObject);
      const ids = (objects: K8sObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
      expect(ids(built), name).toEqual(ids(rendering.objects));
      const images = (objects: K8sObject[]) => objects.flatMap(containersOf).map((c) => c.image).sort();
      expect(images(built), name).toEqual(images(rendering.objects));
      const workerReplicas = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === workload(rendering, 'Deployment', 'worker').object.metadata.name)?.spec.replicas;
      expect(workerReplicas(built), name).toEqual(workerReplicas(rendering.objects));
    }
  });
});

describe('the BullMQ keys KEDA watches', () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  afterAll(() => redis.quit());

  it.each([
    ['a plain prefix', `mozhno-deploy-${randomBytes(4).toString('hex')}`],
    ['a Redis Cluster hash-tag prefix', `{mozhno-deploy-${randomBytes(4).toString('hex')}}`],
  ])('with %s, waiting jobs are in the list <prefix>:deliveries:wait and jobs being delivered in <prefix>:deliveries:active', async (_label, prefix) => {
    const connections = [redis.duplicate(), redis.duplicate()];
    const queue = new Queue(QUEUE_NAME, { connection: connections[0]!, prefix });
    const workers: Worker[] = [];
    try {
      await queue.add('probe', { n: 1 });
      expect(await redis.type(`${prefix}:${QUEUE_NAME}:wait`)).toBe('list');
      expect(await redis.llen(`${prefix}:${QUEUE_NAME}:wait`)).toBe(1);
      const seenActive = new Promise<[string, number]>((resolve) => {
        const active = `${prefix}:${QUEUE_NAME}:active`;
        workers.push(new Worker(QUEUE_NAME, async () => resolve([await redis.type(active), await redis.llen(active)]), { connection: connections[1]!, prefix }));
      });
      expect(await seenActive).toEqual(['list', 1]);
    } finally {
      for (const worker of workers) await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
      for (const connection of connections) connection.disconnect();
    }
  });
});

describe('the health paths the probes and healthchecks use', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api?.close());

  it('are served by the api with 200', async () => {
    const { container, object } = workload(RENDERINGS.base, 'Deployment', 'api');
    const composeApi = APP_SERVICES.find(([, s]) => ([] as string[]).concat(s.command)[0] === 'api')![1];
    const paths = new Set<string>([
      ...[container.readinessProbe, container.livenessProbe, container.startupProbe].filter(Boolean).map((p) => p.httpGet.path as string),
      healthcheckUrl(composeApi).pathname,
      object.spec.template.metadata.annotations?.['prometheus.io/path'] ?? '/metrics',
    ]);
    for (const path of paths) {
      // Readiness may lag the listening socket by the Redis handshake: ask as a probe would, a few times.
      let status = 0;
      for (let attempt = 0; attempt < 20 && status !== 200; attempt += 1) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250));
        const response = await fetch(`${api.server.url}${path}`);
        await response.arrayBuffer();
        status = response.status;
      }
      expect(status, path).toBe(200);
    }
  });
});

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// Keeps imports honest: the compiled output must not need a devDependency at run time (npm ci --omit=dev).
describe('production dependencies', () => {
  it('source that the image runs imports only dependencies, never devDependencies', () => {
    const sources = buildConfig.include.flatMap((dir) => tsFilesUnder(dir));
    expect(sources.length).toBeGreaterThan(10);
    for (const file of sources) {
      const text = read(file);
      for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
        const specifier = (match[1] ?? match[2])!;
        if (specifier.startsWith('.') || isBuiltin(specifier)) continue;
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
        expect(Object.keys(pkg.dependencies), `${file} imports ${name}`).toContain(name);
      }
    }
  });
});

function tsFilesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = relative(ROOT, join(ROOT, dir, entry.name));
    if (entry.isDirectory()) return tsFilesUnder(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}
