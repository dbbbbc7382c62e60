// The real Better-Auth 1.7.25 server for the integration tests and the local run. It is configured as
// docs/BETTER_AUTH.md tells operators to configure theirs: bcrypt hashes kept from Supabase verify.
//
// Env: DATABASE_URL (required), PORT (default 3000), BETTER_AUTH_SECRET (default: a fixed test secret),
// BETTER_AUTH_URL (default http://127.0.0.1:PORT), MIGRATE ("0" skips creating Better-Auth's tables),
// RATE_LIMIT ("1" turns on Better-Auth's rate limiter, which production enables by default),
// EMAIL_RULE ("stock" leaves out the supabase-emails plugin: Better-Auth's own, stricter email rule, which
// the tests need as the reference a deployment without our config has; never for a real deployment).
// `node server.mjs --migrate-only` creates the tables and exits 0.

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import process from "node:process";

import bcrypt from "bcryptjs";
import { betterAuth } from "better-auth";
import { verifyPassword } from "better-auth/crypto";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import pg from "pg";

import { assertSupabaseEmailsAccepted, supabaseEmails } from "./supabase-emails.mjs";

// Test-only: never a real deployment's secret (those come from SSM / Secrets Manager).
const TEST_SECRET = "auth-migration-test-secret-not-for-production-0123456789";

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}
const port = Number.parseInt(process.env.PORT ?? "3000", 10);
const baseURL = process.env.BETTER_AUTH_URL ?? `http://127.0.0.1:${port}`;
const migrateOnly = process.argv.includes("--migrate-only");
const stockEmailRule = process.env.EMAIL_RULE === "stock";

// Supabase (GoTrue) stores bcrypt hashes; Better-Auth's own are scrypt "salt:key". Both must verify
// so users migrated with their Supabase hash keep their password.
const BCRYPT_PREFIX = /^\$2[aby]\$/;

async function verify({ hash, password }) {
  if (BCRYPT_PREFIX.test(hash)) {
    return bcrypt.compare(password, hash);
  }
  return verifyPassword({ hash, password });
}

const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });

const auth = betterAuth({
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET ?? TEST_SECRET,
  database: pool,
  emailAndPassword: {
    enabled: true,
    password: { verify },
    // Sign-in refuses a longer password with 400 before checking it (default 128). Our Login API
    // forwards up to 1024 characters (2048 UTF-16 units, what JS counts), and a legacy Supabase
    // password may be longer than 128: it must reach the bcrypt check, as it does in GoTrue.
    maxPasswordLength: 2048,
  },
  // Every address GoTrue accepts is an address here too (supabase-emails.mjs).
  plugins: stockEmailRule ? [] : [supabaseEmails()],
  trustedOrigins: [baseURL],
  // New users get UUID ids, like the Supabase users migrated with their ids: the product's tables key
  // users by uuid, and dual-write carries each new id into GoTrue, whose admin API accepts only UUIDs.
  // The function form keeps the id columns text (the "uuid" form would change the schema).
  advanced: { database: { generateId: () => randomUUID() } },
  telemetry: { enabled: false },
  // Tests sign in many times from one address, so the limiter is off unless RATE_LIMIT=1 asks for
  // Better-Auth's production behaviour (sign-in/sign-up: 3 requests per 10 s per client IP).
  rateLimit: { enabled: process.env.RATE_LIMIT === "1" },
});

async function migrate() {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
}

async function main() {
  if (migrateOnly || process.env.MIGRATE !== "0") {
    await migrate();
  }
  if (migrateOnly) {
    await pool.end();
    return;
  }

  // Better-Auth checks its schema on the first request and, through better-call's node handler, a
  // mismatch there is an unhandled rejection that kills the process. Check now, so a database without
  // the tables fails here, before READY, with Better-Auth's own list of what is missing.
  const context = await auth.$context;
  await context.checkSchema?.();
  // Refuse to serve if Better-Auth would still refuse Supabase's addresses (users locked out).
  if (!stockEmailRule) {
    await assertSupabaseEmailsAccepted(auth);
  }

  const handle = toNodeHandler(auth);
  const server = createServer((request, response) => {
    handle(request, response).catch((error) => {
      console.error(error?.stack || String(error));
      if (!response.headersSent) {
        response.writeHead(500, { "content-type": "application/json" });
      }
      response.end(JSON.stringify({ code: "INTERNAL_SERVER_ERROR", message: "Internal server error" }));
    });
  });
  const shutdown = () => {
    server.close(() => pool.end().finally(() => process.exit(0)));
    // Keep-alive connections can hold close() open; the parent only waits a few seconds anyway.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);

  server.listen(port, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`READY ${address.port}\n`);
  });
}

main().catch((error) => {
  console.error(error?.stack || String(error));
  process.exit(1);
});
