import { API_QUERY_TIMEOUT_MS, startApiServer } from './api-server.js';
import { runProcess } from './lifecycle.js';

await runProcess('api', async (config, log) => {
  const server = await startApiServer(config, log, { host: '0.0.0.0' });
  log.info({ url: server.url }, `mozhno api listening on ${server.url}`);
  // Started by `npm start`, which prints where it listens once it does (PORT=0 picks a port).
  if (process.connected) process.send?.({ listening: server.url }, () => undefined);
  return () => server.close();
  // Requests under way get 5 s (see ApiServer.close); a relay or request stuck on a PostgreSQL that
  // stopped answering ends with its statement's timeout; past that, the api exits anyway.
}, { stopDeadlineMs: () => API_QUERY_TIMEOUT_MS + 10_000 });
