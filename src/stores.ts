/**
 * Opening what a configuration names: the queue, result and event stores (one engine for
 * all three, or each apart; the same URL or options twice open one engine) and the task
 * modules. A failure closes whatever had opened, so nothing is left connected.
 *
 * @module
 */

import { runtime } from "./runtime/mod.ts";
import type { Backend } from "./backend.ts";
import type { EngineOptions, OmniQConfig, StoreTarget } from "./api.ts";
import { DEFAULT_URL } from "./api.ts";
import { ConfigError } from "./errors.ts";
import { openBackendOptions, openBackendUrl } from "./url.ts";

/** What {@linkcode openStores} opened. */
export interface OpenedStores {
  /** The engine of the task queue. */
  queue: Backend;
  /** The engine of the result store (the queue's when not set apart). */
  results: Backend;
  /** The engine of the event store (the queue's when not set apart). */
  events: Backend;
  /** Every engine opened here (to close with the queue), not those passed in opened. */
  opened: Backend[];
  /** The URLs of the task modules imported. */
  modules: string[];
}

/**
 * Open the stores and import the task modules of a checked configuration.
 *
 * @param cfg A configuration `validateConfig` accepted.
 */
export async function openStores(cfg: OmniQConfig): Promise<OpenedStores> {
  const main = cfg.backend ?? DEFAULT_URL;
  const byUrl = new Map<string, Promise<Backend>>();
  const opened: Backend[] = [];
  const modules: string[] = [];
  const resolve = (target: StoreTarget | undefined, key: string): Promise<Backend> => {
    const t = target ?? main;
    if (typeof t !== "string" && t && typeof t === "object" && "queue" in t) {
      return Promise.resolve(t as Backend);
    }
    if (typeof t !== "string" && (!t || typeof t !== "object")) {
      throw new ConfigError(`${key}: expected a URL string or a backend, got ${typeof t}`);
    }
    // The same URL, or the same options, for several stores opens one engine.
    const id = typeof t === "string" ? t : JSON.stringify(t);
    let backend = byUrl.get(id);
    if (!backend) {
      const opening = typeof t === "string"
        ? openBackendUrl(t, key)
        : openBackendOptions(t as EngineOptions, key);
      backend = opening.then((b) => {
        opened.push(b);
        return b;
      });
      byUrl.set(id, backend);
    }
    return backend;
  };
  try {
    const [queue, results, events] = await Promise.all([
      resolve(cfg.queue, "queue"),
      resolve(cfg.results, "results"),
      resolve(cfg.events, "events"),
    ]);
    for (const [i, entry] of (cfg.tasks ?? []).entries()) {
      if (typeof entry === "string" || entry instanceof URL) {
        const url = String(
          entry instanceof URL ? entry : new URL(entry, `file://${runtime.cwd()}/`),
        );
        await import(url);
        modules.push(url);
      } else if (!entry || typeof entry !== "object" || typeof entry.name !== "string") {
        throw new ConfigError(`tasks[${i}]: expected a module URL or path, or a task definition`);
      }
    }
    return { queue, results, events, opened, modules };
  } catch (error) {
    await Promise.allSettled([...byUrl.values()].map((b) => b.then((x) => x.close())));
    throw error;
  }
}
