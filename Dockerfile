# syntax=docker/dockerfile:1
# One image for every process; the command picks it (docker/entrypoint.sh):
#   api (default) · worker · migrate · cli <command…>
# Build: docker build -t mozhno .   Run: docker run mozhno worker

# --- build: compile TypeScript to dist/ -------------------------------------
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are not needed: esbuild's (dev-only, for tsx) is unused by tsc, and
# msgpackr-extract loads its prebuilt binary without one (msgpackr falls back to JS).
# Skipping them keeps npm 10 (bundled with Node 22) and npm 11's allowScripts policy alike.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workers ./workers
COPY migrations ./migrations
# tsc leaves non-TypeScript files behind: the dashboard's static files go beside
# dist/src/dashboard/routes.js, where it looks first.
RUN npm run build \
 && cp -R src/dashboard/public dist/src/dashboard/public

# --- runtime: production dependencies and compiled JavaScript only -------------
FROM node:22-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# TypeScript comes along as an optional peer of a dependency (valibot, through Bull Board): nothing
# at run time needs it, so its 23 MB go.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force \
 && rm -rf node_modules/typescript node_modules/.bin/tsc node_modules/.bin/tsserver
# Files stay owned by root: the process cannot change its own code, and the root
# filesystem can be mounted read-only (nothing is written at run time; /tmp at most).
COPY --from=build /app/dist ./dist
COPY docker/entrypoint.sh /usr/local/bin/mozhno
# The node image's "node" user, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# api on PORT (8080); a worker serves /metrics and /healthz on WORKER_METRICS_PORT (9464).
EXPOSE 8080 9464
# No HEALTHCHECK: the same image runs the api (HTTP on 8080), workers (HTTP on 9464,
# or none with WORKER_METRICS_PORT=0) and one-shot migrate/cli runs, so no single
# check is right. docker-compose.yml and the Kubernetes probes check each process.
ENTRYPOINT ["mozhno"]
CMD ["api"]
