/**
 * Azurite's blob service (npm `azurite`, pinned) for the Azure Blob tests: installed into a
 * cache directory when missing, started on 127.0.0.1 on a free port with its data in a
 * fresh temp directory, with a fresh container made for the run, and stopped cleanly.
 *
 * Pinned to 3.35.0, the newest release whose `engines` still admits Node 20 (3.36 asks for
 * Node 21, 3.37 for Node 22), which is what this machine and the Node test run have.
 * Azurite enforces what the engine relies on: Put Blob with `If-None-Match: *` over a blob
 * gives 409 BlobAlreadyExists, a stale `If-Match` on Put Blob or Delete Blob gives 412
 * ConditionNotMet (tests/cloud/azure_test.ts checks both, raw and through the adapter).
 *
 * @example Start Azurite for the length of a block
 * ```ts ignore
 * import { startAzurite } from "./azure_server.ts";
 *
 * await using azurite = await startAzurite();
 * const storage = azurite.storage("run-1");
 * ```
 *
 * @module
 */

import { AzureStorage } from "../../backends/file/cloud/azure.ts";
import type { ConditionalStorage } from "../../backends/file/storage.ts";
import { findBinary, freePort } from "../servers.ts";

/** A cloud store's emulator, started for a test run (the same shape for every store). */
export interface CloudServer extends AsyncDisposable {
  /** Its endpoint, `http://127.0.0.1:PORT`. */
  url: string;
  /** The TCP port it listens on, on 127.0.0.1. */
  port: number;
  /** Its temp directory: data and log (`server.log`). Removed by `stop()`. */
  dir: string;
  /**
   * The storage options that reach this server, with credentials and a fresh container
   * made for the run (the object form of `AzureStorageOptions`).
   */
  options: Record<string, unknown>;
  /** A storage on the run's container under `prefix`. */
  storage(prefix: string): ConditionalStorage;
  /** Stop the server (a signal, then wait for it to exit) and remove its directory. */
  stop(): Promise<void>;
}

/** The Azurite release the tests run on. */
export const AZURITE_VERSION = "3.35.0";

/** Azurite's well-known development account (published in Azurite's documentation). */
export const DEV_ACCOUNT = "devstoreaccount1";

/** The development account's published key (it opens only emulators). */
export const DEV_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/omniq-test/azurite@${AZURITE_VERSION}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path of Azurite's blob service entry, installing the pinned release with npm first
 * when it is missing: into a temp directory renamed into place, so two test processes that
 * install at once never see half an installation.
 *
 * @returns The path of `azurite/dist/src/blob/main.js`.
 */
export async function ensureAzurite(): Promise<string> {
  const dir = cacheDir();
  const main = `${dir}/node_modules/azurite/dist/src/blob/main.js`;
  if (await exists(main)) return main;
  const npm = await findBinary("npm");
  if (!npm) {
    throw new Error(
      `Azurite ${AZURITE_VERSION} is not installed in ${dir} and there is no npm to install it ` +
        `(install Node.js and npm)`,
    );
  }
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  await Deno.mkdir(parent, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: parent, prefix: ".azurite-install-" });
  console.error(`tests/cloud/azure_server.ts: installing azurite@${AZURITE_VERSION} with npm`);
  const result = await new Deno.Command(npm, {
    args: ["install", "--prefix", tmp, "--no-audit", "--no-fund", `azurite@${AZURITE_VERSION}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    const output = new TextDecoder().decode(result.stderr).trimEnd().split("\n").slice(-20);
    throw new Error(
      `npm install azurite@${AZURITE_VERSION} failed (exit ${result.code}):\n${output.join("\n")}`,
    );
  }
  try {
    await Deno.rename(tmp, dir);
  } catch (error) {
    // Another process installed it first: use theirs.
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (!(await exists(main))) throw error;
  }
  return main;
}

function setpriv(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

async function waitReady(
  port: number,
  log: string,
  exited: () => Deno.CommandStatus | undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    const status = exited();
    if (status) {
      throw new Error(
        `azurite exited (code ${status.code}) before answering on ${HOST}:${port}; its log:\n` +
          (await Deno.readTextFile(log).catch(() => "(none)")),
      );
    }
    try {
      // Any HTTP answer (403 to an unsigned request) means the service is up.
      const response = await fetch(`http://${HOST}:${port}/${DEV_ACCOUNT}?comp=list`, {
        signal: AbortSignal.timeout(2_000),
      });
      await response.body?.cancel();
      return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`azurite did not answer on ${HOST}:${port} in ${READY_TIMEOUT_MS} ms (${last})`);
}

/**
 * Start Azurite's blob service and make a fresh container on the development account.
 *
 * @returns The running server; its `options` reach the container with the account's key.
 *
 * @example Start Azurite
 * ```ts ignore
 * await using azurite = await startAzurite();
 * console.log(azurite.url); // http://127.0.0.1:41234
 * ```
 */
export async function startAzurite(): Promise<CloudServer> {
  const main = await ensureAzurite();
  const node = await findBinary("node");
  if (!node) throw new Error("azurite needs node on PATH");
  const dir = await Deno.makeTempDir({ prefix: "omniq-azurite-" });
  const log = `${dir}/server.log`;
  const port = freePort();
  const args = [
    main,
    "--blobHost",
    HOST,
    "--blobPort",
    String(port),
    "--location",
    `${dir}/data`,
    "--silent",
    "--skipApiVersionCheck",
    "--disableTelemetry",
  ];
  // As tests/servers.ts does: the shell sends the output to the log, then becomes setpriv,
  // which sets the parent-death signal, then becomes node, so Azurite is our direct child
  // and the kernel kills it if this process dies without stopping it.
  const priv = setpriv();
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'exec "$@" >>"$0" 2>&1',
      log,
      ...(priv ? [priv, "--pdeathsig=SIGKILL", "--"] : []),
      node,
      ...args,
    ],
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // It exited between the check and the signal.
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
            // Already gone.
          }
          await status;
        }
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();

  try {
    await waitReady(port, log, () => exited);
    const options = {
      container: `omniq-${crypto.randomUUID().slice(0, 8)}`,
      account: DEV_ACCOUNT,
      accountKey: DEV_ACCOUNT_KEY,
      endpoint: `http://${HOST}:${port}/${DEV_ACCOUNT}`,
    };
    await new AzureStorage(options).createContainer();
    return {
      url: `http://${HOST}:${port}`,
      port,
      dir,
      options,
      storage: (prefix: string) => new AzureStorage({ ...options, prefix }),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
