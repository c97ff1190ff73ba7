# Node.js 26 is the current LTS line; CareVault also runs on Node 20.19+ and 22.13+.
FROM node:26-slim AS build
WORKDIR /app
# pkcs11js (PKCS#11 key custody, an optional dependency) compiles a native addon.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src src
COPY migrations migrations
RUN npm run build && npm prune --omit=dev

FROM node:26-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 HL7_MLLP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# Mount points of the compose file's named volumes: a volume takes the ownership of the
# directory it is mounted on, and the service (uid 1000, read-only root) must write there.
RUN mkdir -p /var/lib/carevault /audit && chown node:node /var/lib/carevault /audit
USER node
EXPOSE 3000 2575
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:3000/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]
