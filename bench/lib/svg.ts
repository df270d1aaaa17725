/**
 * The scaling plot (case 8), as a small hand-written SVG: two panels, one
 * line per runtime. Left, the cost per item per stage at 1, 4, 16 and 64
 * stages relative to 1 stage (flat at 1.00x is the goal); right, items/s at
 * concurrency 1, 8, 64 and 512 relative to concurrency 1. Both x axes are
 * logarithmic; both y axes are ratios measured in one process, never times.
 *
 * @module
 */

/** One runtime's two curves: [x, ratio] points. */
export interface Curve {
  /** E.g. `Bun 1.4.5 (JavaScriptCore, rev …)`. */
  readonly runtime: string;
  readonly date: string;
  /** The higher of the 1-minute load averages at the case's start and end. */
  readonly load: number;
  readonly stages: readonly (readonly [number, number])[];
  readonly concurrency: readonly (readonly [number, number])[];
}

const WIDTH = 860;
const HEIGHT = 360;
const PANEL = { width: 340, height: 220, top: 60 };
const LEFTS = [70, 480];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function text(x: number, y: number, body: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escape(body)}</text>`;
}

/** A y range that holds every value and 1 (the reference), with a little room, rounded to tenths. */
function yRange(values: readonly number[]): [number, number] {
  const lo = Math.min(1, ...values), hi = Math.max(1, ...values);
  const pad = Math.max(0.05, (hi - lo) * 0.1);
  return [Math.max(0, Math.floor((lo - pad) * 10) / 10), Math.ceil((hi + pad) * 10) / 10];
}

function panel(
  left: number,
  title: string,
  xLabel: string,
  yLabel: string,
  xs: readonly number[],
  lines: readonly { color: string; points: readonly (readonly [number, number])[] }[],
): string {
  const { width, height, top } = PANEL;
  const [y0, y1] = yRange(lines.flatMap((l) => l.points.map((p) => p[1])));
  const lx0 = Math.log(xs[0]), lx1 = Math.log(xs[xs.length - 1]);
  const px = (x: number) => left + ((Math.log(x) - lx0) / (lx1 - lx0)) * width;
  const py = (y: number) => top + height - ((y - y0) / (y1 - y0)) * height;
  const out: string[] = [];
  out.push(text(left + width / 2, top - 14, title, 'text-anchor="middle" font-weight="bold"'));
  out.push(
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#999" stroke-width="1"/>`,
  );
  const step = (y1 - y0) / 5;
  for (let k = 0; k <= 5; k++) {
    const y = y0 + k * step;
    out.push(
      `<line x1="${left}" x2="${left + width}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#eee"/>`,
    );
    out.push(text(left - 6, py(y) + 4, `${y.toFixed(2)}x`, 'text-anchor="end" font-size="11"'));
  }
  out.push(
    `<line x1="${left}" x2="${left + width}" y1="${py(1).toFixed(1)}" y2="${
      py(1).toFixed(1)
    }" stroke="#666" stroke-dasharray="4 3"/>`,
  );
  for (const x of xs) {
    out.push(text(px(x), top + height + 16, String(x), 'text-anchor="middle" font-size="11"'));
  }
  out.push(text(left + width / 2, top + height + 34, xLabel, 'text-anchor="middle" font-size="12"'));
  out.push(
    text(
      left - 52,
      top + height / 2,
      yLabel,
      `text-anchor="middle" font-size="12" transform="rotate(-90 ${left - 52} ${top + height / 2})"`,
    ),
  );
  for (const line of lines) {
    const points = line.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${points}" fill="none" stroke="${line.color}" stroke-width="2"/>`);
    for (const [x, y] of line.points) {
      out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5" fill="${line.color}"/>`);
    }
  }
  return out.join("\n");
}

/** The whole SVG document for `curves` (one per runtime). */
export function scalingSvg(curves: readonly Curve[]): string {
  const colored = curves.map((curve, i) => ({ curve, color: COLORS[i % COLORS.length] }));
  const body = [
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    text(
      WIDTH / 2,
      24,
      "sluice scaling (bench case 8): ratios measured in one process per runtime",
      'text-anchor="middle" font-size="15" font-weight="bold"',
    ),
    panel(
      LEFTS[0],
      "Cost per item per stage",
      "stages (concurrency 8)",
      "relative to 1 stage",
      [1, 4, 16, 64],
      colored.map(({ curve, color }) => ({ color, points: curve.stages })),
    ),
    panel(
      LEFTS[1],
      "Throughput",
      "concurrency per stage (4 stages)",
      "relative to concurrency 1",
      [1, 8, 64, 512],
      colored.map(({ curve, color }) => ({ color, points: curve.concurrency })),
    ),
    ...colored.map(({ curve, color }, i) => {
      const y = HEIGHT - 28 + 0 * i;
      const x = 20 + i * 280;
      const label = `${curve.runtime.replace(/ \(.*\)$/, "")}, ${curve.date.slice(0, 10)}, load ${
        curve.load.toFixed(2)
      }`;
      return `<line x1="${x}" x2="${x + 20}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="3"/>\n` +
        text(x + 26, y + 4, label, 'font-size="11"');
    }),
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
    `font-family="sans-serif">\n${body.join("\n")}\n</svg>\n`;
}
