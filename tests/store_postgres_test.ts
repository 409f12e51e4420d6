// The store-level suite on the `postgres:` engine: a fresh schema per case (dropped when the
// case ends); a second handle opens the same schema.
//
// The server comes from OMNIQ_TEST_POSTGRES_URL (tests/run.ts starts one and sets it).

import { openPostgres } from "../backends/postgres/mod.ts";
import { dropSchema, freshSchema, postgresUrl, schemaUrl } from "./fixtures/postgres.ts";
import { runStoreConformance } from "./store/mod.ts";

postgresUrl(); // no server: fail now, with the reason, instead of in every case
runStoreConformance({
  name: "postgres store",
  open: async () => {
    const schema = freshSchema("omniq_store");
    const url = schemaUrl(schema);
    const backend = await openPostgres(url);
    return {
      backend,
      connect: () => openPostgres(url),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        await dropSchema(schema);
      },
    };
  },
});
