/**
 * `deno task build:npm`: write the npm package of OmniQ into `dist/npm/` — ESM JavaScript
 * and `.d.ts` compiled by the TypeScript compiler from npm (`tsc`, which rewrites the
 * sources' `.ts` import paths to `.js`), a `package.json` whose `exports` map is made from
 * `deno.json`'s one for one, the CLI as a `bin`, the README and the licence.
 *
 * The sources compiled are exactly the local modules of the library's module graph (from
 * `deno info`), plus the modules the pools and the sync bridge start by URL. They are
 * copied into `dist/.build/src/` first, beside a `package.json` and the compiler's own
 * `node_modules` (installed once and kept), so the compiler resolves the npm packages the
 * way Node will.
 *
 * @example
 * ```sh
 * deno task build:npm      # → dist/npm/, then: npm install ./dist/npm
 * ```
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
const OUT = new URL("dist/npm/", ROOT);
const WORK = new URL("dist/.build/", ROOT);

/** Modules started by URL (threads, subprocesses), not imported: the graph misses them. */
const STARTED = [
  "workers/thread_entry.ts",
  "workers/process_entry.ts",
  "sync_host.ts",
  "backends/sqlite/checkpoint_entry.ts",
];

/** The build's own tools, pinned (the compiler's options below need TypeScript 5.7+). */
const TOOLS = { "typescript": "5.9.3", "@types/node": "^22" };

/** Optional drivers: named in `peerDependencies`, installed by the user when wanted. */
const OPTIONAL_PEERS = { "better-sqlite3": ">=12" };

/** The lowest Node the package runs on. */
export const NODE_ENGINES = ">=20";

/** What the build reads from `deno.json`. */
export interface DenoJson {
  /** The package's JSR name. */
  name: string;
  /** Its version. */
  version: string;
  /** Its licence. */
  license: string;
  /** Subpath → source module. */
  exports: Record<string, string>;
  /** Bare specifier → `npm:` specifier. */
  imports: Record<string, string>;
}

/**
 * The npm `exports` map for `deno.json`'s: the same subpaths, each to its compiled module
 * and its declarations.
 *
 * @param exports `deno.json`'s `exports`.
 * @returns The `exports` of the npm `package.json`.
 */
export function npmExports(
  exports: Record<string, string>,
): Record<string, { types: string; import: string }> {
  const out: Record<string, { types: string; import: string }> = {};
  for (const [subpath, source] of Object.entries(exports)) {
    const base = source.replace(/\.ts$/, "");
    out[subpath] = { types: `${base}.d.ts`, import: `${base}.js` };
  }
  return out;
}

/**
 * The npm package an `npm:` specifier names, and its version: `npm:@a/b@1.2.3/sub` →
 * `["@a/b", "1.2.3"]`.
 */
function npmPackage(specifier: string): [string, string] {
  const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)/.exec(specifier);
  if (!m) throw new Error(`build:npm: cannot read the npm specifier ${specifier}`);
  return [m[1], m[2]];
}

async function run(cmd: string, args: string[], cwd: URL): Promise<void> {
  const { code } = await new Deno.Command(cmd, { args, cwd, stdout: "inherit", stderr: "inherit" })
    .output();
  if (code !== 0) throw new Error(`build:npm: ${cmd} ${args.join(" ")} exited with ${code}`);
}

async function graph(entries: string[]): Promise<{ local: string[]; npm: Set<string> }> {
  const local = new Set<string>();
  const npm = new Set<string>();
  for (const entry of entries) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (out.code !== 0) throw new Error(`build:npm: deno info ${entry} failed`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string }[];
      redirects: Record<string, string>;
    };
    for (const m of info.modules) {
      if (m.specifier.startsWith(ROOT.href)) local.add(m.specifier.slice(ROOT.href.length));
    }
    for (const from of Object.keys(info.redirects)) if (from.startsWith("npm:")) npm.add(from);
  }
  return { local: [...local].sort(), npm };
}

/**
 * Build the package.
 *
 * @returns The directory written.
 */
export async function buildNpm(): Promise<URL> {
  const deno = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))) as DenoJson;
  const entries = [...new Set([...Object.values(deno.exports), ...STARTED])];
  const { local, npm } = await graph(entries);

  // The dependencies are the npm packages the graph reaches, at deno.json's versions.
  const dependencies: Record<string, string> = {};
  for (const specifier of npm) {
    const [name, version] = npmPackage(specifier);
    dependencies[name] = version;
  }

  await Deno.remove(new URL("src/", WORK), { recursive: true }).catch(() => {});
  await Deno.remove(OUT, { recursive: true }).catch(() => {});
  await Deno.mkdir(new URL("src/", WORK), { recursive: true });
  for (const file of local) {
    const to = new URL(`src/${file}`, WORK);
    await Deno.mkdir(new URL(".", to), { recursive: true });
    await Deno.copyFile(new URL(file, ROOT), to);
  }

  const workPackage = {
    name: "omniq-build",
    private: true,
    type: "module",
    dependencies,
    devDependencies: TOOLS,
  };
  const workPackageText = JSON.stringify(workPackage, null, 2) + "\n";
  const workPackageUrl = new URL("package.json", WORK);
  const before = await Deno.readTextFile(workPackageUrl).catch(() => "");
  if (before !== workPackageText || !(await exists(new URL("node_modules/.bin/tsc", WORK)))) {
    await Deno.writeTextFile(workPackageUrl, workPackageText);
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], WORK);
  }

  const tsconfig = {
    compilerOptions: {
      target: "es2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      rewriteRelativeImportExtensions: true,
      declaration: true,
      strict: true,
      // deno check is the type check; tsc only emits, with Node's view of the packages.
      noCheck: true,
      skipLibCheck: true,
      lib: ["es2023", "dom", "dom.iterable"],
      types: ["node"],
      rootDir: "src",
      outDir: "../npm",
      newLine: "lf",
    },
    include: ["src/**/*.ts"],
  };
  await Deno.writeTextFile(new URL("tsconfig.json", WORK), JSON.stringify(tsconfig, null, 2));
  await run(new URL("node_modules/.bin/tsc", WORK).pathname, ["-p", "tsconfig.json"], WORK);

  const peerDependenciesMeta = Object.fromEntries(
    Object.keys(OPTIONAL_PEERS).map((name) => [name, { optional: true }]),
  );
  const pkg = {
    name: "omniq",
    version: deno.version,
    description:
      "A task queue for TypeScript: one API over SQLite, files, Deno KV, PostgreSQL, Redis " +
      "and NATS JetStream, with async, thread and process workers, schedules and dependencies",
    license: deno.license,
    type: "module",
    engines: { node: NODE_ENGINES },
    exports: npmExports(deno.exports),
    bin: { omniq: "./bin/omniq.js" },
    dependencies,
    peerDependencies: OPTIONAL_PEERS,
    peerDependenciesMeta,
    files: ["**/*.js", "**/*.d.ts", "README.md", "LICENSE"],
  };
  await Deno.writeTextFile(new URL("package.json", OUT), JSON.stringify(pkg, null, 2) + "\n");
  await Deno.mkdir(new URL("bin/", OUT), { recursive: true });
  await Deno.writeTextFile(
    new URL("bin/omniq.js", OUT),
    `#!/usr/bin/env node\nimport { main } from "../cli.js";\nimport process from "node:process";\n` +
      `process.exit(await main(process.argv.slice(2)));\n`,
  );
  await Deno.chmod(new URL("bin/omniq.js", OUT), 0o755);
  await Deno.copyFile(new URL("README.md", ROOT), new URL("README.md", OUT));
  if (await exists(new URL("LICENSE", ROOT))) {
    await Deno.copyFile(new URL("LICENSE", ROOT), new URL("LICENSE", OUT));
  }
  return OUT;
}

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const out = await buildNpm();
  console.log(`build:npm: wrote ${decodeURIComponent(out.pathname)}`);
}
