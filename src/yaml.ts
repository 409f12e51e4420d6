/**
 * YAML parsing, through the `yaml` package: the only module that imports it.
 *
 * @module
 */

import { parse } from "yaml";
import { ConfigError } from "./errors.ts";

/**
 * Parse a YAML document into plain data.
 *
 * @param text The document.
 * @param source Where it came from, for error messages.
 * @throws {ConfigError} When the text is not valid YAML.
 */
export function parseYaml(text: string, source: string): unknown {
  try {
    return parse(text, { prettyErrors: true });
  } catch (error) {
    throw new ConfigError(`${source}: invalid YAML: ${(error as Error).message}`);
  }
}
