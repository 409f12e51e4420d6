/**
 * Cron expressions, through croner: the only module that imports it. Five fields, or six
 * with seconds first; an IANA time zone, checked up front (croner only rejects a bad zone
 * when it computes a run).
 *
 * @module
 */

import { Cron } from "croner";
import { ConfigError } from "./errors.ts";

/** A parsed cron expression. */
export interface CronSpec {
  /** The expression as given. */
  readonly pattern: string;
  /** The first run strictly after `after` (epoch ms), if any. */
  next(after: number): number | undefined;
}

/** Check an IANA time zone name. */
export function checkTimeZone(tz: string, name = "tz"): string {
  if (typeof tz !== "string" || tz === "") {
    throw new ConfigError(`${name}: expected an IANA time zone such as "Europe/Berlin"`);
  }
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    throw new ConfigError(
      `${name}: unknown time zone ${
        JSON.stringify(tz)
      }; expected an IANA name such as "UTC" or "Europe/Berlin"`,
    );
  }
  return tz;
}

/**
 * Parse a cron expression.
 *
 * @param pattern Five fields (`"*\/5 * * * *"`) or six with seconds first.
 * @param tz An IANA time zone; UTC when omitted.
 * @throws {ConfigError} When the expression or the time zone is not valid.
 */
export function parseCron(pattern: string, tz = "UTC", name = "cron"): CronSpec {
  checkTimeZone(tz);
  if (typeof pattern !== "string" || pattern.trim() === "") {
    throw new ConfigError(`${name}: expected a cron expression such as "*/5 * * * *"`);
  }
  const fields = pattern.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    throw new ConfigError(
      `${name}: expected 5 fields (minute hour day month weekday) or 6 with seconds first, got ${fields} in ${
        JSON.stringify(pattern)
      }`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(pattern, {
      timezone: tz,
      paused: true,
      mode: fields === 6 ? "6-part" : "5-part",
    });
    cron.nextRun(new Date());
  } catch (error) {
    throw new ConfigError(
      `${name}: invalid cron expression ${JSON.stringify(pattern)}: ${(error as Error).message}`,
    );
  }
  return {
    pattern,
    next(after: number): number | undefined {
      return cron.nextRun(new Date(after))?.getTime();
    },
  };
}
