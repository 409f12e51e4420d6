// The cloud stores' URLs in configuration (no server needed): the registry knows s3://,
// az:// and gs://; their credentials come from each cloud's usual environment variables
// only through configFromEnv and resolveConfig({ env: true }), never through OmniQ.open;
// bad URLs and options are refused before any request, naming what is wrong.
import assert from "node:assert/strict";
import { configFromEnv, OmniQ, validateConfig } from "../mod.ts";
import { ConfigError } from "../src/errors.ts";
import { engineForScheme } from "../src/registry.ts";

Deno.test("cloud config: the registry opens s3://, az:// and gs:// through the file engine", () => {
  assert.equal(engineForScheme("s3")?.name, "s3");
  assert.equal(engineForScheme("az")?.name, "azure");
  assert.equal(engineForScheme("gs")?.name, "gcs");
});

Deno.test("cloud config: configFromEnv gives an S3 URL the AWS_* credentials", () => {
  const config = configFromEnv({
    env: {
      OMNIQ_BACKEND: "s3://tasks/prod?endpoint=http://127.0.0.1:9000",
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_SESSION_TOKEN: "token",
      AWS_REGION: "eu-west-1",
    },
  });
  assert.deepEqual(config.backend, {
    s3: {
      url: "s3://tasks/prod?endpoint=http://127.0.0.1:9000",
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "secret",
      sessionToken: "token",
      region: "eu-west-1",
    },
  });
});

Deno.test("cloud config: a region or endpoint in the URL wins over the environment's", () => {
  const config = configFromEnv({
    env: {
      OMNIQ_QUEUE: "s3://tasks/p?region=us-west-2&endpoint=http://127.0.0.1:1",
      AWS_ACCESS_KEY_ID: "a",
      AWS_SECRET_ACCESS_KEY: "b",
      AWS_REGION: "eu-west-1",
      AWS_ENDPOINT_URL: "http://elsewhere:2",
    },
  });
  const s3 = (config.queue as { s3: Record<string, unknown> }).s3;
  assert.equal(s3.region, undefined);
  assert.equal(s3.endpoint, undefined);
});

Deno.test("cloud config: Azure's connection string or account key, GCS's key file", async () => {
  const az = configFromEnv({
    env: {
      OMNIQ_RESULTS: "az://results/p",
      AZURE_STORAGE_CONNECTION_STRING:
        "AccountName=a;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    },
  });
  assert.deepEqual(az.results, {
    azure: {
      url: "az://results/p",
      connectionString: "AccountName=a;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    },
  });
  const dir = await Deno.makeTempDir();
  try {
    const keyFile = `${dir}/key.json`;
    await Deno.writeTextFile(
      keyFile,
      JSON.stringify({ client_email: "sa@p.iam.gserviceaccount.com", private_key: "-----BEGIN" }),
    );
    const gs = configFromEnv({
      env: { OMNIQ_EVENTS: "gs://events/p", GOOGLE_APPLICATION_CREDENTIALS: keyFile },
    });
    assert.deepEqual(gs.events, {
      gcs: {
        url: "gs://events/p",
        clientEmail: "sa@p.iam.gserviceaccount.com",
        privateKey: "-----BEGIN",
      },
    });
    await Deno.writeTextFile(keyFile, "{}");
    assert.throws(
      () =>
        configFromEnv({
          env: { OMNIQ_EVENTS: "gs://e/p", GOOGLE_APPLICATION_CREDENTIALS: keyFile },
        }),
      (e: unknown) => e instanceof ConfigError && /not a service-account key/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cloud config: without credentials in the environment, a URL stays a URL", () => {
  const config = configFromEnv({ env: { OMNIQ_BACKEND: "s3://tasks/p" } });
  assert.equal(config.backend, "s3://tasks/p");
});

Deno.test("cloud config: resolveConfig({ env: true }) gives a URL from code its credentials", async () => {
  // In a child with an environment of its own: this process's has the test servers' OMNIQ_TEST_*
  // variables, which configFromEnv rightly refuses as unknown.
  const mod = new URL("../mod.ts", import.meta.url).href;
  const code = `import { resolveConfig } from "${mod}";
    const withEnv = await resolveConfig({ code: "s3://tasks/p", env: true });
    const without = await resolveConfig({ code: "s3://tasks/p" });
    console.log(JSON.stringify([withEnv.backend, without.backend]));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `--config=${new URL("../deno.json", import.meta.url).pathname}`, code],
    clearEnv: true,
    env: {
      AWS_ACCESS_KEY_ID: "from-env",
      AWS_SECRET_ACCESS_KEY: "from-env-secret",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      PATH: Deno.env.get("PATH") ?? "",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), [
    { s3: { url: "s3://tasks/p", accessKeyId: "from-env", secretAccessKey: "from-env-secret" } },
    "s3://tasks/p",
  ]);
});

Deno.test("cloud config: OmniQ.open alone never reads the environment", async () => {
  await assert.rejects(
    () => OmniQ.open("s3://tasks/p?endpoint=http://127.0.0.1:1"),
    (e: unknown) => e instanceof ConfigError && /s3: no credentials/.test(e.message),
  );
});

Deno.test("cloud config: object forms are checked key by key before anything is loaded", () => {
  const cases: [unknown, RegExp][] = [
    [{ s3: { url: "s3://t/p", secretKey: "x" } }, /secretKey/],
    [{ azure: { url: "az://c/p", accountkey: "x" } }, /accountkey/],
    [{ gcs: { url: "gs://b/p", timeoutMs: 0 } }, /timeoutMs/],
    [{ s3: { url: 42 } }, /url/],
  ];
  for (const [backend, message] of cases) {
    assert.throws(
      () => validateConfig({ backend } as never),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(backend),
    );
  }
});

Deno.test("cloud config: bad URLs are refused at open, before any request", async () => {
  const cases: [string, RegExp][] = [
    ["s3://tasks/a/../b", /prefix/],
    ["s3://tasks/a//p", /prefix/],
    ["az://container/p", /account/],
    ["gs://Bad_Bucket/p", /bucket/],
  ];
  for (const [url, message] of cases) {
    await assert.rejects(
      () =>
        OmniQ.open(
          url.startsWith("s3")
            ? { backend: { s3: { url, accessKeyId: "a", secretAccessKey: "b" } } }
            : url,
        ),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      url,
    );
  }
});
