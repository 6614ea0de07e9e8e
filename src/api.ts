import { API_STOP_DEADLINE_MS, startApiServer } from './api-server.js';
import { runProcess } from './lifecycle.js';

await runProcess('api', async (config, log) => {
  const server = await startApiServer(config, log, { host: '0.0.0.0' });
  log.info({ url: server.url }, `mozhno api listening on ${server.url}`);
  // Started by `npm start`, which prints where it listens once it does (PORT=0 picks a port).
  if (process.connected) process.send?.({ listening: server.url }, () => undefined);
  return () => server.close();
},
// Requests under way get 5 s (see ApiServer.close); one stuck on a PostgreSQL that stopped
// answering (no statement is timed out: see README "Delivery") would hold the stop for as long
// as TCP takes to give up, so past 20 s the api exits anyway: within the grace periods of
// deploy/ (30 s, of which the preStop hook's 5 s come first) and docker-compose.yml (30 s).
{ stopDeadlineMs: () => API_STOP_DEADLINE_MS });
