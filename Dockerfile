# syntax=docker/dockerfile:1
# One image for every process; the command picks it: api (default), worker, migrate, cli.

FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workers ./workers
COPY migrations ./migrations
RUN npm run build

FROM node:22-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY docker/entrypoint.sh /usr/local/bin/mozhno
USER node
EXPOSE 8080
ENTRYPOINT ["mozhno"]
CMD ["api"]
