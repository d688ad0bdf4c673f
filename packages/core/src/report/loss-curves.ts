import type { StepRecord } from '../train/trainer.js';

/** One method's training losses, for the plot. */
export interface LossCurve {
  /** Legend label, usually the method. */
  readonly method: string;
  readonly history: readonly StepRecord[];
}

/** The plot's size and smoothing. */
export interface LossPlotOptions {
  /** Logarithmic loss axis (steps with a loss ≤ 0 are left out). Default false. */
  readonly logScale?: boolean;
  readonly title?: string;
  readonly width?: number;
  readonly height?: number;
  /** Longer histories are averaged over consecutive steps down to this many points per line. Default 500. */
  readonly maxPointsPerLine?: number;
}

type Point = readonly [step: number, loss: number];

/** Okabe–Ito colours: distinguishable with the common colour-vision deficiencies. */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];
const MARGIN = { left: 72, right: 24, top: 44, bottom: 56 };
const FONT = 'font-family="sans-serif"';
/** Rough width of a 12 px sans-serif character, to size the legend box without measuring text. */
const CHAR_WIDTH = 7;

/**
 * Training loss against step as a self-contained SVG (generic font family, no scripts or external
 * references): ticked and labelled axes, one polyline per curve, a legend.
 */
export function lossCurvesSvg(curves: readonly LossCurve[], options: LossPlotOptions = {}): string {
  const { logScale = false, title = 'Training loss', width = 720, height = 440, maxPointsPerLine = 500 } = options;
  const lines = curves.map((curve) => {
    const points = curve.history.map((r): Point => [r.step, r.loss]).filter(([, loss]) => Number.isFinite(loss) && (!logScale || loss > 0));
    return { label: curve.method, points: downsample(points, maxPointsPerLine) };
  });
  const all = lines.flatMap((line) => line.points);
  const x = linearAxis(0, Math.max(1, ...all.map(([step]) => step)));
  const losses = all.map(([, loss]) => loss);
  const y = logScale ? logAxis(losses) : linearAxis(Math.min(...losses), Math.max(...losses));

  const plot = { left: MARGIN.left, top: MARGIN.top, right: width - MARGIN.right, bottom: height - MARGIN.bottom };
  const toX = (step: number) => plot.left + ((step - x.min) / (x.max - x.min)) * (plot.right - plot.left);
  const toY = (loss: number) =>
    plot.bottom - ((y.position(loss) - y.position(y.min)) / (y.position(y.max) - y.position(y.min))) * (plot.bottom - plot.top);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="${MARGIN.top / 2 + 6}" text-anchor="middle" font-size="16" ${FONT}>${escapeXml(title)}</text>`,
    `<g class="grid" stroke="#e5e5e5" stroke-width="1">`,
    ...x.ticks.map((t) => `<line x1="${fixed(toX(t))}" y1="${plot.top}" x2="${fixed(toX(t))}" y2="${plot.bottom}"/>`),
    ...y.ticks.map((t) => `<line x1="${plot.left}" y1="${fixed(toY(t))}" x2="${plot.right}" y2="${fixed(toY(t))}"/>`),
    '</g>',
    `<g class="axes" stroke="#333333" stroke-width="1">`,
    `<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}"/>`,
    `<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}"/>`,
    ...x.ticks.map((t) => `<line x1="${fixed(toX(t))}" y1="${plot.bottom}" x2="${fixed(toX(t))}" y2="${plot.bottom + 5}"/>`),
    ...y.ticks.map((t) => `<line x1="${plot.left - 5}" y1="${fixed(toY(t))}" x2="${plot.left}" y2="${fixed(toY(t))}"/>`),
    '</g>',
    `<g class="tick-labels" font-size="12" fill="#333333" ${FONT}>`,
    ...x.ticks.map((t) => `<text x="${fixed(toX(t))}" y="${plot.bottom + 20}" text-anchor="middle">${formatTick(t)}</text>`),
    ...y.ticks.map(
      (t) => `<text x="${plot.left - 8}" y="${fixed(toY(t))}" text-anchor="end" dominant-baseline="central">${formatTick(t)}</text>`,
    ),
    '</g>',
    `<text class="x-label" x="${(plot.left + plot.right) / 2}" y="${height - 14}" text-anchor="middle" font-size="13" ${FONT}>training step</text>`,
    `<text class="y-label" transform="translate(18 ${(plot.top + plot.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="13" ${FONT}>${logScale ? 'loss (log scale)' : 'loss'}</text>`,
    ...lines.flatMap((line, i) =>
      line.points.length === 0
        ? []
        : [
            `<polyline data-method="${escapeXml(line.label)}" fill="none" stroke="${colourOf(i)}" stroke-width="1.5" stroke-linejoin="round" points="${line.points
              .map(([step, loss]) => `${fixed(toX(step))},${fixed(toY(loss))}`)
              .join(' ')}"/>`,
          ],
    ),
    legend(
      lines.map((line) => line.label),
      plot.right,
      plot.top,
    ),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

function legend(labels: readonly string[], right: number, top: number): string {
  const boxWidth = 40 + CHAR_WIDTH * Math.max(0, ...labels.map((label) => label.length));
  const left = right - boxWidth - 8;
  const rows = labels.map((label, i) => {
    const y = top + 20 + i * 18;
    return [
      `<line x1="${left + 8}" y1="${y - 4}" x2="${left + 30}" y2="${y - 4}" stroke="${colourOf(i)}" stroke-width="2.5"/>`,
      `<text x="${left + 36}" y="${y}" font-size="12" ${FONT}>${escapeXml(label)}</text>`,
    ].join('');
  });
  return [
    '<g class="legend">',
    `<rect x="${left}" y="${top + 6}" width="${boxWidth}" height="${labels.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#999999"/>`,
    ...rows,
    '</g>',
  ].join('\n');
}

const colourOf = (index: number): string => COLOURS[index % COLOURS.length];
const fixed = (value: number): string => value.toFixed(1);

/** Means over consecutive runs of points, so a noisy minibatch loss becomes a readable trend. */
function downsample(points: readonly Point[], maxPoints: number): Point[] {
  if (points.length <= maxPoints) return [...points];
  return Array.from({ length: maxPoints }, (_, bucket) => {
    const slice = points.slice(Math.floor((bucket * points.length) / maxPoints), Math.floor(((bucket + 1) * points.length) / maxPoints));
    const mean = (pick: (p: Point) => number) => slice.reduce((total, p) => total + pick(p), 0) / slice.length;
    return [mean(([step]) => step), mean(([, loss]) => loss)];
  });
}

interface Axis {
  readonly min: number;
  readonly max: number;
  readonly ticks: readonly number[];
  /** Where a value sits along the axis before scaling to pixels. */
  position(value: number): number;
}

/** Bounds widened to round numbers, ticks at 1, 2 or 5 × 10ᵏ steps (about six of them). */
function linearAxis(low: number, high: number): Axis {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return linearAxis(0, 1);
  if (low === high) return linearAxis(low - Math.max(1, Math.abs(low) / 10), high + Math.max(1, Math.abs(high) / 10));
  const rough = (high - low) / 6;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const spacing = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  const min = Math.floor(low / spacing) * spacing;
  const max = Math.ceil(high / spacing) * spacing;
  const ticks = Array.from({ length: Math.round((max - min) / spacing) + 1 }, (_, i) => roundOff(min + i * spacing));
  return { min, max, ticks, position: (value) => value };
}

/** Whole decades around the values; 2 and 5 within each decade when the range spans at most two. */
function logAxis(values: readonly number[]): Axis {
  if (values.length === 0) return logAxis([0.1, 1]);
  const lowExponent = Math.floor(Math.log10(Math.min(...values)));
  const highExponent = Math.max(lowExponent + 1, Math.ceil(Math.log10(Math.max(...values))));
  const mantissas = highExponent - lowExponent <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lowExponent; e <= highExponent; e++) {
    for (const m of mantissas) if (e < highExponent || m === 1) ticks.push(roundOff(m * 10 ** e));
  }
  return { min: 10 ** lowExponent, max: 10 ** highExponent, ticks, position: Math.log10 };
}

/** Removes binary noise such as 0.30000000000000004 from computed tick values. */
function roundOff(value: number): number {
  return Number(value.toPrecision(12));
}

function formatTick(value: number): string {
  const magnitude = Math.abs(value);
  if (value !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)) return value.toExponential().replace('e+', 'e');
  return String(value);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
