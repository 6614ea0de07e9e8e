#!/bin/sh
# Chooses the process of the image: api | worker | migrate | cli <command…>
set -e
case "${1:-api}" in
  api) exec node dist/src/api.js ;;
  worker) exec node dist/workers/delivery-worker.js ;;
  migrate) exec node dist/src/db/migrate-cli.js ;;
  cli) shift; exec node dist/src/cli.js "$@" ;;
  *) exec "$@" ;;
esac
