/**
 * The registry entries of the `file:` engine on the three object stores: `s3://`, `az://`
 * and `gs://` URLs, and their object forms `{ s3: {…} }`, `{ azure: {…} }`, `{ gcs: {…} }`
 * (a `url` plus the keys it cannot say, such as credentials; a key given beside the URL wins
 * over the URL's query). Each store's adapter (and its request signing) is imported only when
 * a store of it opens, so a program on SQLite never loads one.
 *
 * Credentials never come from the environment on their own: `configFromEnv` and
 * `resolveConfig({ env: true })` read each cloud's usual variables through
 * {@linkcode EngineEntry.fromEnvironment} and put them into the object form.
 *
 * @module
 */

import type { EngineEntry } from "../../../src/registry.ts";
import { ConfigError } from "../../../src/errors.ts";
import { runtime } from "../../../src/runtime/mod.ts";
import type { ConditionalStorage } from "../storage.ts";
import type { FileBackend } from "../mod.ts";

type Env = Record<string, string | undefined>;

/** The first set variable of `names`. */
function first(env: Env, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

/** Options without the keys that are unset. */
function defined(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** The registry entry of `s3://bucket/prefix` (S3 and S3-compatible servers). */
export const s3Engine: EngineEntry = {
  name: "s3",
  schemes: ["s3"],
  options: {
    url: "string",
    bucket: "string",
    prefix: "string",
    endpoint: "string",
    region: "string",
    pathStyle: "boolean",
    accessKeyId: "string",
    secretAccessKey: "string",
    sessionToken: "string",
    timeoutMs: "positive",
    checkPreconditions: "boolean",
  },
  fromEnvironment(url, env) {
    return defined({
      url,
      accessKeyId: first(env, "AWS_ACCESS_KEY_ID"),
      secretAccessKey: first(env, "AWS_SECRET_ACCESS_KEY"),
      sessionToken: first(env, "AWS_SESSION_TOKEN"),
      region: /[?&]region=/.test(url) ? undefined : first(env, "AWS_REGION", "AWS_DEFAULT_REGION"),
      endpoint: /[?&]endpoint=/.test(url)
        ? undefined
        : first(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    });
  },
  openUrl(url) {
    return s3Engine.openOptions!({ url });
  },
  async openOptions(options) {
    const { S3Storage, parseS3Url } = await import("./s3.ts");
    const [{ url, ...rest }, checks] = storeOptions(options);
    const base = typeof url === "string" ? parseS3Url(url) : {};
    const merged = { ...base, ...rest } as Record<string, unknown>;
    if (merged.accessKeyId === undefined || merged.secretAccessKey === undefined) {
      throw new ConfigError(
        `s3: no credentials for ${url ?? `s3://${merged.bucket}`}: give accessKeyId and ` +
          `secretAccessKey in the object form ({ s3: { url, accessKeyId, secretAccessKey } }), ` +
          `or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and read them with configFromEnv()`,
      );
    }
    return await openOn(
      new S3Storage(merged as unknown as ConstructorParameters<typeof S3Storage>[0]),
      checks,
    );
  },
};

/** The registry entry of `az://container/prefix` (Azure Blob Storage). */
export const azureEngine: EngineEntry = {
  name: "azure",
  schemes: ["az"],
  options: {
    url: "string",
    container: "string",
    prefix: "string",
    account: "string",
    accountKey: "string",
    sasToken: "string",
    connectionString: "string",
    endpoint: "string",
    timeoutMs: "positive",
    checkPreconditions: "boolean",
  },
  fromEnvironment(url, env) {
    const connectionString = first(env, "AZURE_STORAGE_CONNECTION_STRING");
    if (connectionString) return { url, connectionString };
    return defined({
      url,
      account: /[?&]account=/.test(url) ? undefined : first(env, "AZURE_STORAGE_ACCOUNT"),
      accountKey: first(env, "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCESS_KEY"),
      sasToken: first(env, "AZURE_STORAGE_SAS_TOKEN"),
    });
  },
  openUrl(url) {
    return azureEngine.openOptions!({ url });
  },
  async openOptions(options) {
    const { AzureStorage, parseAzureUrl } = await import("./azure.ts");
    const [{ url, ...rest }, checks] = storeOptions(options);
    const base = typeof url === "string" ? parseAzureUrl(url) : {};
    const merged = { ...base, ...rest };
    return await openOn(
      new AzureStorage(merged as unknown as ConstructorParameters<typeof AzureStorage>[0]),
      checks,
    );
  },
};

/** The registry entry of `gs://bucket/prefix` (Google Cloud Storage). */
export const gcsEngine: EngineEntry = {
  name: "gcs",
  schemes: ["gs"],
  options: {
    url: "string",
    bucket: "string",
    prefix: "string",
    endpoint: "string",
    accessToken: "string",
    clientEmail: "string",
    privateKey: "string",
    tokenUri: "string",
    anonymous: "boolean",
    timeoutMs: "positive",
    checkPreconditions: "boolean",
  },
  fromEnvironment(url, env) {
    const emulator = first(env, "STORAGE_EMULATOR_HOST");
    const endpoint = /[?&]endpoint=/.test(url) || !emulator
      ? undefined
      : /^https?:\/\//.test(emulator)
      ? emulator
      : `http://${emulator}`;
    const token = first(env, "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN");
    if (token) return defined({ url, endpoint, accessToken: token });
    const file = first(env, "GOOGLE_APPLICATION_CREDENTIALS");
    if (file) return defined({ url, endpoint, ...serviceAccount(file) });
    // An emulator takes requests without credentials.
    return defined({ url, endpoint, anonymous: emulator ? true : undefined });
  },
  openUrl(url) {
    return gcsEngine.openOptions!({ url });
  },
  async openOptions(options) {
    const { GcsStorage, parseGcsUrl } = await import("./gcs.ts");
    const [{ url, clientEmail, privateKey, tokenUri, ...rest }, checks] = storeOptions(options);
    const base = typeof url === "string" ? parseGcsUrl(url) : {};
    const merged: Record<string, unknown> = { ...base, ...rest };
    if (clientEmail !== undefined || privateKey !== undefined) {
      if (typeof clientEmail !== "string" || typeof privateKey !== "string") {
        throw new ConfigError("gcs: a service account needs both clientEmail and privateKey");
      }
      merged.credentials = defined({
        client_email: clientEmail,
        private_key: privateKey,
        token_uri: tokenUri,
      });
    }
    return await openOn(
      new GcsStorage(merged as unknown as ConstructorParameters<typeof GcsStorage>[0]),
      checks,
    );
  },
};

/** The service-account key file `GOOGLE_APPLICATION_CREDENTIALS` names, as option keys. */
function serviceAccount(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = runtime.fs.readTextFileSync(file);
  } catch (error) {
    throw new ConfigError(
      `GOOGLE_APPLICATION_CREDENTIALS: cannot read ${file}: ${(error as Error).message}`,
    );
  }
  let key: Record<string, unknown>;
  try {
    key = JSON.parse(text);
  } catch {
    throw new ConfigError(`GOOGLE_APPLICATION_CREDENTIALS: ${file} is not JSON`);
  }
  if (typeof key.client_email !== "string" || typeof key.private_key !== "string") {
    throw new ConfigError(
      `GOOGLE_APPLICATION_CREDENTIALS: ${file} is not a service-account key ` +
        `(no client_email and private_key)`,
    );
  }
  return defined({
    clientEmail: key.client_email,
    privateKey: key.private_key,
    tokenUri: typeof key.token_uri === "string" ? key.token_uri : undefined,
  });
}

/** The options every store's object form takes besides its own: what `openOn` does. */
interface OpenChecks {
  /** Probe at open that the server enforces conditional writes (default `true`). */
  checkPreconditions?: boolean;
}

/** An object form's options without the keys `openOn` takes. */
function storeOptions(options: Record<string, unknown>): [Record<string, unknown>, OpenChecks] {
  const { checkPreconditions, ...rest } = options;
  return [rest, { checkPreconditions: checkPreconditions as boolean | undefined }];
}

/**
 * The `file:` engine on an object store, once one listing of its prefix went through (wrong
 * credentials, a missing bucket or container and an unreachable endpoint fail here, at open,
 * with the store's own error naming the store, not at the first task) and a probe showed the
 * server enforces conditional writes (unless `checkPreconditions: false`).
 */
async function openOn(storage: ConditionalStorage, checks: OpenChecks): Promise<FileBackend> {
  await storage.list("");
  if (checks.checkPreconditions !== false) {
    const { checkPreconditions } = await import("./common.ts");
    await checkPreconditions(storage);
  }
  const { openFile } = await import("../mod.ts");
  return await openFile(storage.location, { storage });
}
