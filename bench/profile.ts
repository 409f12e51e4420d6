/**
 * Where a worker's time goes, per engine: runs the processing phase of the throughput
 * bench (no-op tasks, one async worker at concurrency 10) in a child process under
 * `--cpu-prof`, then prints the functions with the most time of their own and the most
 * time under them, with the share the engine's I/O waits leave idle.
 *
 * Run with `deno task bench:profile` (`--engines memory,sqlite`, `--tasks 20000`, `--keep`
 * to keep the `.cpuprofile` files, which Chrome's DevTools open). Servers are throwaway ones
 * on loopback, as in `bench/throughput.ts`.
 *
 * @module
 */
import { startNats, startPostgres, startRedis, type TestServer } from "../tests/servers.ts";
import { flag } from "./throughput.ts";

/** One node of a V8 CPU profile. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A V8 CPU profile, as `--cpu-prof` writes it. */
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The functions with the most self and inclusive time in a profile.
 *
 * @param profile The profile.
 * @param top How many of each to give.
 * @returns Two lists of `[share of all samples, function at file:line]`, self first.
 */
export function summarize(
  profile: CpuProfile,
  top: number,
): [[number, string][], [number, string][]] {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const file = url.split("/").slice(-2).join("/");
    return `${functionName || "(anonymous)"}${file ? ` ${file}:${lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const node = nodes.get(id)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const name = label(nodes.get(cur)!);
      if (seen.has(name) || name === "(root)") continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    }
  });
  const best = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, t]) =>
      [t / total, k] as [number, string]
    );
  return [best(self), best(inclusive)];
}

const CHILD = new URL("./profile_worker.ts", import.meta.url);

async function profileOne(url: string, tasks: number, dir: string): Promise<CpuProfile> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "-A",
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      CHILD.href,
      url,
      String(tasks),
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`profiling ${url} failed`);
  const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no profile written for ${url}`);
  return JSON.parse(await Deno.readTextFile(`${dir}/${file.name}`));
}

async function main(): Promise<void> {
  const TASKS = Number(flag("--tasks") ?? 20_000);
  const TOP = Number(flag("--top") ?? 15);
  const ENGINES = (flag("--engines") ?? "memory,sqlite,file,kv,postgres,redis,nats").split(",");
  const keep = Deno.args.includes("--keep");
  const servers: TestServer[] = [];
  try {
    for (const engine of ENGINES) {
      const dir = await Deno.makeTempDir({ prefix: `omniq-profile-${engine}-` });
      let url: string;
      switch (engine) {
        case "memory":
          url = "memory:";
          break;
        case "sqlite":
          url = `sqlite:${dir}/store.db`;
          break;
        case "file":
          url = `file:${dir}/store`;
          break;
        case "kv":
          url = `kv:${dir}/store.kv`;
          break;
        case "postgres": {
          const s = await startPostgres();
          servers.push(s);
          url = s.url;
          break;
        }
        case "redis": {
          const s = await startRedis();
          servers.push(s);
          url = s.url;
          break;
        }
        case "nats": {
          const s = await startNats();
          servers.push(s);
          url = s.url;
          break;
        }
        default:
          throw new Error(`--engines: unknown engine "${engine}"`);
      }
      const profileDir = `${dir}/profile`;
      await Deno.mkdir(profileDir);
      const [self, inclusive] = summarize(await profileOne(url, TASKS, profileDir), TOP);
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      console.log(`\n### ${engine}: processing ${TASKS.toLocaleString("en-US")} no-op tasks\n`);
      console.log("| self | function | | inclusive | function |");
      console.log("|---:|---|---|---:|---|");
      for (let i = 0; i < TOP; i++) {
        const s = self[i], c = inclusive[i];
        console.log(
          `| ${s ? pct(s[0]) : ""} | ${s ? `\`${s[1]}\`` : ""} | | ${c ? pct(c[0]) : ""} | ${
            c ? `\`${c[1]}\`` : ""
          } |`,
        );
      }
      if (keep) console.log(`\n(profile kept in ${profileDir})`);
      else await Deno.remove(dir, { recursive: true });
    }
    const args = Deno.args.length ? ` ${Deno.args.join(" ")}` : "";
    console.log(`\nMade by \`deno task bench:profile${args}\`.`);
  } finally {
    for (const s of servers) await s.stop();
  }
}

if (import.meta.main) await main();
