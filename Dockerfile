# Tessera: one process serving HTTP, socket.io signalling, WebRTC (UDP) and recording, with one
# worker process per recording. Debian's FFmpeg 5.1 is used (FFMPEG_PATH); the npm-bundled 4.1
# build works too. The build steps below are the ones `npm test` runs on the same Debian base
# (tests/integration/built.test.ts), since no Docker engine runs in CI.

# --- build: compile TypeScript to dist/ (type errors fail the build) -----------------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY compositor ./compositor
RUN npm run build

# --- runtime: compiled JavaScript, production dependencies, a non-root user ----------------
FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY grid-presets ./grid-presets
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    RECORDINGS_DIR=/data/recordings
# The root filesystem may be read-only: /data (recordings, S3 spool) and /tmp are the only paths
# written, and are volumes in k8s/deployment.yaml.
RUN mkdir -p /data/recordings && chown -R node:node /data
VOLUME ["/data", "/tmp"]
USER node
EXPOSE 8080
# tini forwards SIGTERM to node, which drains: calls and recordings go on until they end.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
