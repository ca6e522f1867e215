# Conclave's container image: built in one stage (npm ci, tsc), run from a slim one as a non-root user with its data in a volume.
# Build: docker build -t conclave .   Run one node: docker run -p 8080:8080 -v conclave-data:/var/lib/conclave conclave
# The node listens on 0.0.0.0 inside the container, so it requires tokens (secure by default): its first
# cluster-admin token is in the volume, /var/lib/conclave/admin.token. docker-compose.yml runs three.

FROM node:20-bookworm-slim AS build
WORKDIR /src
# Native modules (RocksDB, uWebSockets.js) come prebuilt for linux-x64 glibc; the toolchain is for other platforms.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json biome.json ./
COPY raft ./raft
COPY storage ./storage
COPY net ./net
COPY src ./src
COPY scripts ./scripts
COPY test ./test
RUN npm rebuild --no-audit --no-fund && npm run build && rm -rf dist/test dist/scripts && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system --gid 10001 conclave \
  && useradd --system --uid 10001 --gid conclave --home-dir /var/lib/conclave --no-create-home conclave \
  && mkdir -p /var/lib/conclave /run/conclave \
  && chown conclave:conclave /var/lib/conclave /run/conclave
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER conclave
VOLUME /var/lib/conclave
# 8080: the client API (HTTP, WebSocket, /metrics); 7000: the mesh between nodes.
EXPOSE 8080 7000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["start", "--single", "--data-dir", "/var/lib/conclave", "--client-listen", "0.0.0.0:8080"]
