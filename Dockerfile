# Tessera: one process serving HTTP, socket.io signalling, WebRTC (UDP) and recording.
# Debian's FFmpeg 5.1 is used (FFMPEG_PATH); the npm-bundled 4.1 build works too.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY compositor ./compositor
COPY grid-presets ./grid-presets
# Type-check at build time: a broken tree never becomes an image.
RUN npx tsc -p . --noEmit || (echo "type check failed" && exit 1)
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    RECORDINGS_DIR=/data/recordings
RUN mkdir -p /data/recordings && chown -R node:node /data /app
USER node
EXPOSE 8080
# tini forwards SIGTERM to node, which drains recordings before exiting.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["npx", "tsx", "src/main.ts"]
