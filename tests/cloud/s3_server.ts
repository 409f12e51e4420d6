/**
 * An S3-compatible server for the S3 tests: Ceph's RADOS Gateway from Debian's `radosgw`,
 * over the smallest Ceph cluster that serves it (one monitor, one OSD on the in-memory
 * `memstore` object store), every daemon on 127.0.0.1 with its data, keys and logs in a fresh
 * temp directory, a user with known keys and a fresh bucket made for the run.
 *
 * Why this server: it is an S3 implementation used in production that enforces what the
 * `s3://` store relies on, atomically: PutObject with `If-None-Match: *` gives 412 when the
 * key exists and PutObject with a stale `If-Match` gives 412 (tests/cloud/s3_test.ts checks
 * both with raw requests, and that of many racing creates of one key exactly one wins).
 * The npm emulator fauxqs 2.4 checks preconditions on GET only, not on PutObject, and PyPI's
 * (moto) is out of reach here.
 *
 * The packages (`ceph-mon`, `ceph-osd`, `radosgw`, with `ceph-common` and `ceph-base`) are
 * installed with apt-get as root when missing, like the other servers of `tests/servers.ts`.
 * A cluster starts in about ten seconds, most of it the gateway making its pools.
 *
 * @example Start the gateway for the length of a block
 * ```ts ignore
 * import { startRadosGateway } from "./s3_server.ts";
 *
 * await using s3 = await startRadosGateway();
 * const storage = s3.storage("run-1");
 * ```
 *
 * @module
 */

import { S3Storage } from "../../backends/file/cloud/s3.ts";
import {
  ensurePackage,
  findBinary,
  freePort,
  launch,
  type Launched,
  runCommand,
} from "../servers.ts";
import type { CloudServer } from "./azure_server.ts";

const HOST = "127.0.0.1";

/** The access key of the user the tests sign with (a throwaway cluster's, made per run). */
export const ACCESS_KEY = "omniq-test-access";
/** The secret key of that user. */
export const SECRET_KEY = "omniq-test-secret-key-0123456789";

const PACKAGES: [binary: string, debianPackage: string][] = [
  ["monmaptool", "ceph-base"],
  ["ceph-authtool", "ceph-common"],
  ["ceph-mon", "ceph-mon"],
  ["ceph-osd", "ceph-osd"],
  ["radosgw", "radosgw"],
];

/** Find the Ceph binaries, installing their Debian packages when missing (as root). */
async function ensureCeph(): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const [binary, pkg] of PACKAGES) found[binary] = await ensurePackage(binary, pkg);
  for (const binary of ["ceph", "radosgw-admin"]) {
    const path = await findBinary(binary);
    if (!path) throw new Error(`${binary} is missing after installing ceph-common`);
    found[binary] = path;
  }
  return found;
}

function config(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:${HOST}:${monPort}
public addr = ${HOST}
ms bind ipv6 = false
keyring = ${dir}/keyring
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
[mon]
mon data = ${dir}/mon
[osd]
osd objectstore = memstore
memstore device bytes = 2147483648
osd data = ${dir}/osd$id
osd max object name len = 256
osd max object namespace len = 64
[client]
rgw frontends = beast endpoint=${HOST}:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
`;
}

async function must(command: string, args: string[], what: string): Promise<string> {
  const result = await runCommand(command, args);
  if (!result.ok) {
    throw new Error(`${what} failed (exit ${result.code}):\n${result.output.trimEnd()}`);
  }
  return result.output;
}

/**
 * Start a one-OSD Ceph cluster with its RADOS Gateway, make a user and a fresh bucket.
 *
 * @returns The running server; its `options` reach the bucket with the user's keys.
 *
 * @example Start the gateway
 * ```ts ignore
 * await using s3 = await startRadosGateway();
 * console.log(s3.url); // http://127.0.0.1:41234
 * ```
 */
export async function startRadosGateway(): Promise<CloudServer> {
  const bin = await ensureCeph();
  const dir = await Deno.makeTempDir({ prefix: "omniq-ceph-" });
  const daemons: Launched[] = [];
  const stop = async () => {
    for (const daemon of daemons.splice(0).reverse()) await daemon.stopProcess();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const sub of ["run", "mon", "osd0", "rgw"]) await Deno.mkdir(`${dir}/${sub}`);
    const monPort = freePort();
    const rgwPort = freePort();
    const fsid = crypto.randomUUID();
    const conf = `${dir}/ceph.conf`;
    await Deno.writeTextFile(conf, config(dir, fsid, monPort, rgwPort));
    const c = ["-c", conf];
    const keyring = `${dir}/keyring`;
    const keys: [string, string[]][] = [
      ["mon.", ["--cap", "mon", "allow *"]],
      ["client.admin", ["--cap", "mon", "allow *", "--cap", "osd", "allow *"]],
      ["osd.0", ["--cap", "mon", "allow profile osd", "--cap", "osd", "allow *"]],
      ["client.rgw", ["--cap", "mon", "allow rw", "--cap", "osd", "allow rwx"]],
    ];
    for (const [i, [name, caps]] of keys.entries()) {
      const create = i === 0 ? ["--create-keyring"] : [];
      await must(
        bin["ceph-authtool"],
        [keyring, ...create, "--gen-key", "-n", name, ...caps],
        name,
      );
    }
    const monmap = `${dir}/monmap`;
    await must(
      bin.monmaptool,
      ["--create", "--fsid", fsid, "--addv", "a", `[v2:${HOST}:${monPort}]`, monmap],
      "monmaptool",
    );
    await must(
      bin["ceph-mon"],
      [...c, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring],
      "ceph-mon --mkfs",
    );
    const daemon = (
      name: string,
      command: string,
      args: string[],
      port: number,
      probe?: () => Promise<boolean>,
    ) =>
      launch({
        name,
        command,
        args: [...c, "-f", ...args],
        stopSignal: "SIGTERM",
        port,
        dir: `${dir}/run`,
        log: `${dir}/${name}.out`,
        readyTimeoutMs: 60_000,
        probe,
      });
    daemons.push(await daemon("ceph-mon", bin["ceph-mon"], ["-i", "a"], monPort));
    const osdUuid = crypto.randomUUID();
    const id = (await must(bin.ceph, [...c, "osd", "new", osdUuid], "ceph osd new")).trim();
    if (id !== "0") throw new Error(`ceph osd new gave id ${JSON.stringify(id)}, expected 0`);
    await must(
      bin["ceph-osd"],
      [...c, "-i", "0", "--mkfs", "--osd-uuid", osdUuid],
      "ceph-osd --mkfs",
    );
    // The OSD listens on ports of its own choosing: it is ready when the monitor says it is up.
    daemons.push(
      await daemon("ceph-osd", bin["ceph-osd"], ["-i", "0"], monPort, async () => {
        const out = await runCommand(bin.ceph, [...c, "osd", "stat", "-f", "json"]);
        return out.ok && JSON.parse(out.output).num_up_osds === 1;
      }),
    );
    await must(
      bin["radosgw-admin"],
      [
        ...c,
        "user",
        "create",
        "--uid=omniq",
        "--display-name=omniq tests",
        `--access-key=${ACCESS_KEY}`,
        `--secret=${SECRET_KEY}`,
      ],
      "radosgw-admin user create",
    );
    daemons.push(await daemon("radosgw", bin.radosgw, ["-n", "client.rgw"], rgwPort));
    const url = `http://${HOST}:${rgwPort}`;
    const options = {
      bucket: `omniq-${crypto.randomUUID().slice(0, 8)}`,
      endpoint: url,
      region: "us-east-1",
      accessKeyId: ACCESS_KEY,
      secretAccessKey: SECRET_KEY,
    };
    const bucket = new S3Storage(options);
    await bucket.createBucket();
    // The first write into a new bucket makes the gateway's data pool (about two seconds):
    // done here, so no test's timing pays for it.
    await bucket.writeAtomic("warm-up", new Uint8Array(1));
    await bucket.delete("warm-up");
    return {
      url,
      port: rgwPort,
      dir,
      options,
      storage: (prefix: string) => new S3Storage({ ...options, prefix }),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
