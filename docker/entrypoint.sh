#!/bin/sh
# The image's entry point: the first argument picks the process.
#   api | worker | migrate | cli <command…>   (anything else runs as given, e.g. `sh`)
# Paths are relative to the working directory, /app in the image. `exec` makes node
# the container's main process, so it receives SIGTERM itself and drains before exit.
set -e
case "${1:-api}" in
  api) exec node dist/src/api.js ;;
  # getaddrinfo lookups take a thread of libuv's pool each (4 by default), read once at start: 64 so
  # that the delivery client's fallback lookups (at most 8) never hold up PostgreSQL's and Redis's.
  worker) export UV_THREADPOOL_SIZE="${UV_THREADPOOL_SIZE:-64}"; exec node dist/workers/delivery-worker.js ;;
  migrate) exec node dist/src/db/migrate-cli.js ;;
  cli) shift; exec node dist/src/cli.js "$@" ;;
  *) exec "$@" ;;
esac
