/**
 * Case 7's server, run as a child process of the same runtime as the suite
 * (`http_server.ts` started by {@linkcode startItemServer}): Node's `http`,
 * `Deno.serve` or `Bun.serve`, each on its own runtime, on 127.0.0.1 and a
 * free port.
 *
 * `GET /item/<id>?attempt=<n>` answers after a timer of {@linkcode LATENCY_MS}
 * with the body `<id + 1>`, or with a 503 on the first attempt of the 1% of
 * ids that {@linkcode failsOnce} picks: the same ids for every contender, so
 * each sees the same failures and retries the same items. The child prints
 * `@@port <n>` once it listens and exits when its stdin closes (the suite
 * ended, however it ended).
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { selfCommand } from "./runtime.ts";

/** The server's latency per request, in milliseconds. */
export const LATENCY_MS = 2;
const PORT_MARK = "@@port ";

/** True for the 1% of ids whose first attempt gets a 503 (a fixed hash of the id, not a random draw). */
export function failsOnce(id: number): boolean {
  let h = Math.imul(id ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) % 100 === 0;
}

/** The status and body for a request path, or undefined for a path that is not an item. */
function answer(pathAndQuery: string): { status: number; body: string } | undefined {
  const match = /^\/item\/(\d+)\?attempt=(\d+)$/.exec(pathAndQuery);
  if (!match) return undefined;
  const id = Number(match[1]);
  if (Number(match[2]) === 1 && failsOnce(id)) return { status: 503, body: "busy, try again" };
  return { status: 200, body: String(id + 1) };
}

const delay = () => new Promise((resolve) => setTimeout(resolve, LATENCY_MS));

interface DenoServe {
  serve(
    options: { hostname: string; port: number; onListen(addr: { port: number }): void },
    handler: (request: Request) => Promise<Response>,
  ): unknown;
}
interface BunServe {
  serve(options: { hostname: string; port: number; fetch(request: Request): Promise<Response> }): { port: number };
}

/** Serves on this runtime's own server API and resolves with the port. */
async function serve(): Promise<number> {
  const g = globalThis as { Deno?: DenoServe; Bun?: BunServe };
  const respond = async (request: Request) => {
    const url = new URL(request.url);
    await delay();
    const result = answer(url.pathname + url.search);
    return result
      ? new Response(result.body, { status: result.status })
      : new Response("no such path", { status: 404 });
  };
  if (g.Deno) {
    const deno = g.Deno;
    return await new Promise((resolve) =>
      deno.serve({ hostname: "127.0.0.1", port: 0, onListen: (a) => resolve(a.port) }, respond)
    );
  }
  if (g.Bun) return g.Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: respond }).port;
  const http = await import("node:http");
  const server = http.createServer((request, response) => {
    delay().then(() => {
      const result = answer(request.url ?? "");
      response.writeHead(result?.status ?? 404, { "content-type": "text/plain" });
      response.end(result?.body ?? "no such path");
    });
  });
  server.keepAliveTimeout = 60_000;
  return await new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

/** A running server: its base URL, and how to stop it. */
export interface ItemServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the server in a child process of this runtime and waits until it listens. */
export function startItemServer(): Promise<ItemServer> {
  const { command, args } = selfCommand(fileURLToPath(import.meta.url));
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let output = "";
    const failed = (why: string) => reject(new Error(`case 7's HTTP server ${why}; it printed: ${output}`));
    child.on("error", (error) => failed(`did not start: ${error.message}`));
    child.on("exit", (code) => failed(`exited with code ${code} before it listened`));
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (data: string) => {
      output += data;
      const line = output.split("\n").find((l) => l.startsWith(PORT_MARK));
      if (!line) return;
      child.removeAllListeners("exit");
      const exited = new Promise<void>((done) => child.once("exit", () => done()));
      resolve({
        url: `http://127.0.0.1:${Number(line.slice(PORT_MARK.length))}`,
        stop: async () => {
          child.stdin!.end();
          await exited;
        },
      });
    });
  });
}

// Run as a script (the child): serve until stdin closes.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const port = await serve();
  process.stdout.write(`${PORT_MARK}${port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("close", () => process.exit(0));
}
