import { parseArgs } from 'node:util';
import { PLANS, type Plan, loadConfig } from './config.js';
import { assertDatabaseReachable, createDb } from './db/knex.js';
import { assertMigrated, ensureDatabase, migrateLatest } from './db/migrate.js';
import { exitOnStartupError, StartupError } from './lifecycle.js';
import { EventLog } from './events/event-log.js';
import { nameField } from './http/schemas.js';
import { idParam } from './http/validation.js';
import { bootstrap, createKey, setPlan } from './projects/bootstrap.js';

const USAGE = `usage:
  npm run cli -- bootstrap --project <name> --email <email> [--name <user name>] [--plan free|pro|enterprise]
  npm run cli -- set-plan --project-id <id> --plan free|pro|enterprise
  npm run cli -- create-key --project-id <id> --email <email> [--name <user name>]`;

class UsageError extends Error {}

/** Operator commands. Each prints exactly one JSON line on stdout; problems go to stderr with a non-zero exit. */
async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'bootstrap') return runBootstrap(rest);
  if (command === 'set-plan') return runSetPlan(rest);
  if (command === 'create-key') return runCreateKey(rest);
  throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
}

async function runBootstrap(args: string[]): Promise<void> {
  const { values } = parse(args, { project: { type: 'string' }, email: { type: 'string' }, name: { type: 'string' }, plan: { type: 'string' } });
  const project = values.project?.trim();
  if (!project) throw new UsageError('--project <name> is required (1–100 characters)');
  checkName('--project', project);
  const { email, name } = parseUser(values);
  const plan = parsePlan(values.plan ?? 'free');
  await withDatabase({ prepare: true }, async (db) => print(await bootstrap(db, { project, email, name, plan })));
}

async function runSetPlan(args: string[]): Promise<void> {
  const { values } = parse(args, { 'project-id': { type: 'string' }, plan: { type: 'string' } });
  const projectId = parseProjectId(values['project-id']);
  const plan = parsePlan(values.plan);
  await withDatabase({ prepare: false }, async (db) => {
    const result = await setPlan(db, projectId, plan);
    if (!result) throw new StartupError(`project ${projectId} does not exist`);
    print(result);
  });
}

async function runCreateKey(args: string[]): Promise<void> {
  const { values } = parse(args, { 'project-id': { type: 'string' }, email: { type: 'string' }, name: { type: 'string' } });
  const projectId = parseProjectId(values['project-id']);
  const { email, name } = parseUser(values);
  await withDatabase({ prepare: false }, async (db) => {
    const result = await createKey(db, new EventLog(), { projectId, email, name });
    if (!result) throw new StartupError(`project ${projectId} does not exist`);
    print(result);
  });
}

function parseProjectId(written: string | undefined): number {
  // Digits only, as ids in the API's paths: Number() would also take 0x10, 1e1 or " 7 " and act on another project than meant.
  const projectId = idParam(written);
  if (projectId === null) throw new UsageError('--project-id <id> is required: the project\'s id, in digits');
  return projectId;
}

/** A name as the API takes one (1–100 characters, not blank), said as a usage mistake. */
function checkName(option: string, name: string): void {
  try {
    nameField().label(option).validateSync(name, { strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function parseUser(values: { email?: string | undefined; name?: string | undefined }): { email: string; name: string | undefined } {
  const email = values.email?.trim();
  if (!email || !/^[^\s@]+@[^\s@]+$/.test(email)) throw new UsageError('--email <email> is required and must look like name@example.com');
  const name = values.name?.trim();
  if (name !== undefined) checkName('--name', name);
  return { email, name };
}

function parse(args: string[], options: Record<string, { type: 'string' }>) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // parseArgs keeps the last of a repeated option: `--project-id 1 --project-id 2` would change project 2.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new UsageError(`${token.rawName} is given more than once`);
    seen.add(token.name);
  }
  return parsed;
}

function parsePlan(value: string | undefined): Plan {
  if (!PLANS.includes(value as Plan)) throw new UsageError(`--plan must be one of ${PLANS.join(', ')}`);
  return value as Plan;
}

/**
 * `prepare`: create and migrate the database first, so `bootstrap` works on a fresh machine before
 * anything else ran. Other commands take the database as it is: a mistyped name in DATABASE_URL
 * must not become a new, empty database, nor a command migrate a schema behind the operator's back.
 */
async function withDatabase(options: { prepare: boolean }, work: (db: ReturnType<typeof createDb>) => Promise<void>): Promise<void> {
  const config = loadConfig();
  if (options.prepare) await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl, { poolMax: 2 });
  try {
    await assertDatabaseReachable(db, config.databaseUrl);
    if (options.prepare) await migrateLatest(db);
    else await assertMigrated(db);
    await work(db);
  } finally {
    await db.destroy();
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`mozhno: ${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    exitOnStartupError(err, 'failed');
  },
);
