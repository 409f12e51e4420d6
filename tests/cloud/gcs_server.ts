/**
 * A Google Cloud Storage server for the `gs://` store's tests, on 127.0.0.1 with a fresh
 * bucket per run.
 *
 * No emulator that installs here (npm or Debian; PyPI, the Go module proxy and Docker Hub
 * are out of reach) enforces `ifGenerationMatch`: `gcp-storage-emulator` is on PyPI only,
 * `fake-gcs-server` (which does enforce it) is a Go program, and the Cloud Storage emulator
 * of `firebase-tools` (npm) serves the JSON API but ignores every precondition (probed:
 * two uploads with `ifGenerationMatch=0` both answer 200, an upload and a DELETE on a stale
 * generation answer 200 and 204; see {@linkcode probePreconditions}). So:
 *
 * - with `OMNIQ_TEST_GCS_ENDPOINT` set (e.g. `http://127.0.0.1:4443` of a
 *   `fake-gcs-server -scheme http` started by hand), {@linkcode startGcs} uses that server;
 * - otherwise it installs `firebase-tools` (pinned, into `~/.cache/omniq-test/`) and starts
 *   its storage emulator alone: a small Node launcher runs `StorageEmulator` without the
 *   security-rules runtime, a Java 21 jar that the CLI downloads and that requests of the
 *   JSON API with the admin token (`Bearer owner`) never consult. Good for everything but
 *   the preconditions.
 *
 * @example Start the emulator for the length of a block
 * ```ts ignore
 * import { startGcs } from "./gcs_server.ts";
 *
 * await using gcs = await startGcs();
 * const storage = gcs.storage("run-1");
 * ```
 *
 * @module
 */

import { GcsStorage, type GcsStorageOptions } from "../../backends/file/cloud/gcs.ts";
import type { ConditionalStorage } from "../../backends/file/storage.ts";

export type { ConditionalStorage, GcsStorageOptions };
import { ensurePackage, findBinary, freePort } from "../servers.ts";

/** A cloud store's server for the tests (the same shape for S3, Azure Blob and GCS). */
export interface CloudServer extends AsyncDisposable {
  /** The endpoint, `http://127.0.0.1:PORT`. */
  url: string;
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** Its temp directory: data and log (`server.log`). Removed by `stop()`. */
  dir: string;
  /** The {@linkcode GcsStorageOptions} that reach this server, with a fresh bucket. */
  options: Record<string, unknown>;
  /** A storage on a prefix of the run's bucket. */
  storage(prefix: string): ConditionalStorage;
  /** Stop the server and remove its directory. */
  stop(): Promise<void>;
}

/** A {@linkcode CloudServer} for GCS, saying which server it is and what it enforces. */
export interface GcsServer extends CloudServer {
  /** What serves it, e.g. `firebase-tools 15.37.0 storage emulator`. */
  emulator: string;
  /** Whether it enforces `ifGenerationMatch` on uploads and deletes (probed at start). */
  enforcesPreconditions: boolean;
}

/** The environment variable naming a GCS JSON API server of one's own to test against. */
export const GCS_ENDPOINT_ENV = "OMNIQ_TEST_GCS_ENDPOINT";
/** The pinned `firebase-tools` whose storage emulator is started when no server is given. */
export const FIREBASE_TOOLS_VERSION = "15.37.0";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

// The launcher the emulator runs under: `node launch.cjs <firebase-tools dir> <port>`.
// EmulatorRegistry.start is what the CLI calls too: the emulator's answers build their
// links from the registry.
const LAUNCHER = String.raw`"use strict";
const [root, port] = [process.argv[2], Number(process.argv[3])];
const { EmulatorLogger } = require(root + "/lib/emulator/emulatorLogger.js");
EmulatorLogger.prototype.log = function (level, text) {
  if (level !== "DEBUG") console.error(level, text);
};
const { StorageEmulator } = require(root + "/lib/emulator/storage/index.js");
const { EmulatorRegistry } = require(root + "/lib/emulator/registry.js");
const emulator = new StorageEmulator({
  projectId: "demo-omniq", host: "127.0.0.1", port, rules: [], auto_download: false,
});
emulator._rulesRuntime.start = async () => {};
emulator._rulesManager.start = async () => {};
process.on("SIGTERM", () => process.exit(0));
EmulatorRegistry.start(emulator).then(
  () => console.error("storage emulator listening on " + port),
  (error) => { console.error(error); process.exit(1); },
);
`;

/**
 * Start a GCS server with a fresh bucket: the one named by `OMNIQ_TEST_GCS_ENDPOINT`, or
 * else the `firebase-tools` storage emulator (installed when missing).
 *
 * @returns The running server; `enforcesPreconditions` says what the probe found.
 *
 * @example Start it
 * ```ts ignore
 * await using gcs = await startGcs();
 * console.log(gcs.emulator, gcs.enforcesPreconditions);
 * ```
 */
export async function startGcs(): Promise<GcsServer> {
  const external = Deno.env.get(GCS_ENDPOINT_ENV);
  const dir = await Deno.makeTempDir({ prefix: "omniq-gcs-" });
  const bucket = `omniq-${crypto.randomUUID().slice(0, 8)}`;
  let stopProcess = () => Promise.resolve();
  try {
    let url: string;
    let emulator: string;
    let options: GcsStorageOptions;
    if (external) {
      url = external.replace(/\/+$/, "");
      emulator = `the server at ${url} (${GCS_ENDPOINT_ENV})`;
      options = { bucket, endpoint: url, anonymous: true };
    } else {
      const port = freePort();
      url = `http://${HOST}:${port}`;
      emulator = `firebase-tools ${FIREBASE_TOOLS_VERSION} storage emulator`;
      stopProcess = await launchFirebase(dir, port);
      // The admin token: the emulator's JSON API skips its security rules for it.
      options = { bucket, endpoint: url, accessToken: "owner" };
    }
    await createBucket(url, bucket, options);
    const enforces = await probePreconditions(url, bucket, options);
    let stopping: Promise<void> | undefined;
    const stop = () =>
      stopping ??= (async () => {
        await stopProcess();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })();
    return {
      url,
      port: Number(new URL(url).port),
      dir,
      options: { ...options },
      emulator,
      enforcesPreconditions: enforces.enforced,
      storage: (prefix) => new GcsStorage({ ...options, prefix }),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stopProcess().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** The `firebase-tools` package directory, installed with npm into the cache when missing. */
async function firebaseTools(): Promise<string> {
  const home = Deno.env.get("HOME") ?? "/tmp";
  const cache = `${home}/.cache/omniq-test/firebase-tools@${FIREBASE_TOOLS_VERSION}`;
  const root = `${cache}/node_modules/firebase-tools`;
  if (await exists(`${root}/lib/emulator/storage/index.js`)) return root;
  const npm = await findBinary("npm") ??
    await ensurePackage("npm", "npm");
  // Install beside the cache, then rename: a run stopped mid-install leaves no half package.
  const staging = `${cache}.partial-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(staging, { recursive: true });
  await Deno.writeTextFile(`${staging}/package.json`, '{ "private": true }\n');
  console.error(
    `tests/cloud/gcs_server.ts: installing firebase-tools@${FIREBASE_TOOLS_VERSION} with npm`,
  );
  const out = await new Deno.Command(npm, {
    args: [
      "install",
      "--prefix",
      staging,
      `firebase-tools@${FIREBASE_TOOLS_VERSION}`,
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ],
    stdin: "null",
  }).output();
  if (!out.success) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw new Error(
      `npm install firebase-tools@${FIREBASE_TOOLS_VERSION} failed (exit ${out.code}):\n${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  try {
    await Deno.rename(staging, cache);
  } catch (error) {
    // Another run installed it first.
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    if (!await exists(`${root}/lib/emulator/storage/index.js`)) throw error;
  }
  return root;
}

/** Start the emulator on `port`; resolves once it answers, to a function that stops it. */
async function launchFirebase(dir: string, port: number): Promise<() => Promise<void>> {
  const root = await firebaseTools();
  const node = await ensurePackage("node", "nodejs");
  const launcher = `${dir}/launch.cjs`;
  await Deno.writeTextFile(launcher, LAUNCHER);
  const log = `${dir}/server.log`;
  const setpriv = await findBinary("setpriv");
  // `exec` makes the emulator this child (output to the log, no pipes to pump); setpriv's
  // death signal stops it if the test process dies without stopping it.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'exec "$@" >>"$0" 2>&1',
      log,
      ...(setpriv ? [setpriv, "--pdeathsig=SIGTERM", "--"] : []),
      node,
      launcher,
      root,
      String(port),
    ],
    cwd: dir,
    // The emulator keeps its blobs under the temp directory: the run's own.
    env: { TMPDIR: dir },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  const stop = async () => {
    if (exited) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = await Promise.race([
      status.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (late) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await status;
    }
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const res = await fetch(`http://${HOST}:${port}/storage/v1/b/ready/o?maxResults=1`, {
        signal: AbortSignal.timeout(2_000),
      });
      await res.body?.cancel();
      if (res.ok) return stop;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  const tail = await Deno.readTextFile(log).catch(() => "");
  throw new Error(
    `the firebase-tools storage emulator ${
      exited
        ? `exited (code ${exited.code})`
        : `did not answer within ${READY_TIMEOUT_MS} ms (${last})`
    } on port ${port}; its log:\n${tail.slice(-3000)}`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function authHeaders(options: GcsStorageOptions): Record<string, string> {
  return options.accessToken ? { authorization: `Bearer ${options.accessToken}` } : {};
}

/** Create the bucket (an emulator that makes buckets on first write answers 501: fine). */
async function createBucket(url: string, bucket: string, options: GcsStorageOptions) {
  const res = await fetch(`${url}/storage/v1/b?project=omniq-test`, {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeaders(options) },
    body: JSON.stringify({ name: bucket }),
  });
  const text = await res.text();
  if (!res.ok && res.status !== 409 && res.status !== 501) {
    throw new Error(
      `creating bucket ${bucket} at ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`,
    );
  }
}

/** What {@linkcode probePreconditions} saw: each raw request and its status. */
export interface PreconditionProbe {
  /** Whether all four answers are the ones Cloud Storage gives. */
  enforced: boolean;
  /** `request → status` lines, for a report. */
  evidence: string[];
}

/**
 * Probe a server raw (no adapter): create one object twice with `ifGenerationMatch=0`
 * (Cloud Storage: 200, then 412), upload on a stale generation (412) and delete on a
 * stale generation (412).
 *
 * @param url The endpoint.
 * @param bucket A bucket on it.
 * @param options The options whose token to send.
 * @returns Whether it enforces them, and the requests with their answers.
 *
 * @example Probe
 * ```ts ignore
 * const { enforced, evidence } = await probePreconditions(url, "b", { bucket: "b", anonymous: true });
 * ```
 */
export async function probePreconditions(
  url: string,
  bucket: string,
  options: GcsStorageOptions,
): Promise<PreconditionProbe> {
  const name = `probe/${crypto.randomUUID()}`;
  const evidence: string[] = [];
  const send = async (method: string, path: string, body?: string) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { "content-type": "application/octet-stream", ...authHeaders(options) },
      body,
    });
    const text = await res.text();
    let generation = "";
    try {
      generation = String(JSON.parse(text).generation ?? "");
    } catch {
      // Not JSON.
    }
    evidence.push(
      `${method} ${path} → ${res.status}${generation ? ` generation ${generation}` : ""}`,
    );
    return { status: res.status, generation };
  };
  const upload = (gen: string) =>
    `/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${
      encodeURIComponent(name)
    }&ifGenerationMatch=${gen}`;
  const first = await send("POST", upload("0"), "first");
  const second = await send("POST", upload("0"), "second");
  const current = second.generation || first.generation;
  const stale = String(BigInt(current || "1") - 1n);
  const staleWrite = await send("POST", upload(stale), "stale");
  const staleDelete = await send(
    "DELETE",
    `/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?ifGenerationMatch=${stale}`,
  );
  return {
    enforced: first.status === 200 && second.status === 412 && staleWrite.status === 412 &&
      staleDelete.status === 412,
    evidence,
  };
}
