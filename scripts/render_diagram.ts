/**
 * Draws docs/graph.svg, the README's picture: a graph built from a config
 * (a route, a broadcast into two stages and a join) is run over 20 orders,
 * and its Mermaid text with the run's counts is rendered by the `mermaid`
 * package in headless Chromium (SVG text labels, so the file stands alone).
 *
 *   node --import tsx scripts/render_diagram.ts
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { fromConfig, type GraphConfig, PermanentError, processor, toMermaid } from "../mod.ts";
import { launchChromium, mermaidPage } from "../tests/fixtures/chromium.ts";
import { bin, root } from "../tests/fixtures/runtimes.ts";

interface Order {
  readonly id: number;
  readonly total: number;
}

const registry = {
  byTotal: processor({
    kind: "route",
    parameters: z.object({ limit: z.number() }),
    create: ({ limit }) => (order: Order) => order.total > limit ? "big" : "small",
  }),
  score: processor({
    create: () => (order: Order) => {
      if (order.total % 3 === 0) throw new PermanentError(`order ${order.id}: no credit record`);
      return Math.round(order.total / 10);
    },
  }),
  audit: processor({ create: () => (order: Order) => `audited ${order.id}` }),
  ship: processor({ create: () => (order: Order) => ({ ...order, shipped: true }) }),
};

const config: GraphConfig = {
  name: "orders",
  sources: ["orders"],
  processors: [
    { name: "by total", kind: "route", type: "byTotal", parameters: { limit: 100 }, branches: ["big", "small"] },
    { name: "review", kind: "broadcast" },
    { name: "credit score", type: "score", options: { maxRetries: 2 } },
    { name: "audit log", type: "audit" },
    { name: "decision", kind: "join", timeoutMs: 5000 },
    { name: "ship", type: "ship" },
  ],
  connections: [
    { from: "orders", to: "by total" },
    { from: "by total", branch: "big", to: "review" },
    { from: "review", to: "credit score" },
    { from: "review", to: "audit log" },
    { from: "credit score", to: "decision", as: "score" },
    { from: "audit log", to: "decision", as: "audit" },
    { from: "by total", branch: "small", to: "ship" },
  ],
  outputs: { reviewed: "decision", shipped: "ship" },
};

const g = fromConfig<{ orders: Order }, Record<string, unknown>>(config, registry);
await g.run(Array.from({ length: 20 }, (_, id) => ({ id, total: (id * 37) % 200 })));
const text = toMermaid(g.shape({ counts: true }));

const browser = await launchChromium();
try {
  const page = await mermaidPage(browser, { htmlLabels: false, flowchart: { htmlLabels: false }, theme: "default" });
  const svg = await page.evaluate(async (text) => {
    const mermaid = (globalThis as unknown as {
      mermaid: { render(id: string, text: string): Promise<{ svg: string }> };
    }).mermaid;
    return (await mermaid.render("graph", text)).svg;
  }, text);
  const file = join(root, "docs", "graph.svg");
  writeFileSync(file, svg + "\n");
  // deno fmt formats SVG too, and the checks run deno fmt --check.
  spawnSync(bin("deno"), ["fmt", "--quiet", file], { stdio: "inherit" });
  console.log(text);
  console.log(`wrote ${file} (${svg.length} bytes)`);
} finally {
  await browser.close();
}
