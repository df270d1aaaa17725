/**
 * The worker of the hand-written pool in bench/workers.ts: hashes each
 * buffer it is sent and posts `[id, digest]` back. The smallest protocol a
 * pool can have, as a user would write it.
 *
 * @module
 */

import { connectToParent } from "../../src/runtime.ts";
import sha256 from "./sha256.ts";

const post = await connectToParent((data) => {
  const [id, buffer] = data as [number, ArrayBuffer];
  post([id, sha256(buffer)], []);
});
