// The npm build under Node is part of `deno task test`: the suite itself is tests/node/suite.ts
// (alone: `deno task test:node`).

import "./node/suite.ts";
