// The conformance suite on the `postgres:` engine: a fresh schema per case (dropped when
// the case ends). It runs twice: with everything in PostgreSQL (results and events written
// in the queue's own transactions), and with the queue in PostgreSQL but results and events
// in a memory store, which checks that the orchestrator forwards every effect it reports.
//
// The server comes from OMNIQ_TEST_POSTGRES_URL (tests/run.ts starts one and sets it).

import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";
import { dropSchema, freshSchema, postgresUrl, schemaUrl } from "./fixtures/postgres.ts";

function postgresStore(split: boolean): () => Promise<StoreFixture> {
  return () => {
    const schema = freshSchema();
    const url = schemaUrl(schema);
    const side = `memory:conformance-${crypto.randomUUID()}`;
    const stores: StoreConfig = split
      ? { queue: url, results: side, events: side }
      : { backend: url };
    return Promise.resolve({
      stores,
      [Symbol.asyncDispose]: () => dropSchema(schema),
    });
  };
}

postgresUrl(); // no server: fail now, with the reason, instead of in every case
runConformance({ name: "postgres", store: postgresStore(false) });
runConformance({ name: "postgres+memory results/events", store: postgresStore(true) });
