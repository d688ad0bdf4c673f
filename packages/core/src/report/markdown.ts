import type { MethodMetrics, MethodResult } from '../methods/compare.js';

/** The settings a result depends on, recorded beside it. */
export interface ReportContext {
  readonly model: string;
  readonly cut: string;
  readonly dataset: string;
  readonly seed: number;
  readonly backend: string;
  /** Further settings worth recording (splits, parametrisation, …), listed after the fixed ones. */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
}

/** What a report shows of a method's result (a `MethodResult` is one). */
export type ResultSummary = Pick<MethodResult, 'method' | 'metrics' | 'trainSeconds' | 'finalLoss'>;

const METRIC_COLUMNS: readonly { readonly key: keyof MethodMetrics; readonly header: string }[] = [
  { key: 'top1', header: 'top-1' },
  { key: 'top5', header: 'top-5' },
  { key: 'mAP11', header: 'mAP (11-point)' },
  { key: 'mAPArea', header: 'mAP (area)' },
];

/** A fraction as a percentage with two decimals, or '—' when missing. */
export function formatPercent(fraction: number | undefined): string {
  return fraction === undefined || Number.isNaN(fraction) ? '—' : `${(fraction * 100).toFixed(2)} %`;
}

/**
 * A Markdown page: one row per method with the metrics any method has (the best of each in bold),
 * training time and final loss, then the settings.
 */
export function markdownReport(results: readonly ResultSummary[], context: ReportContext): string {
  const metrics = METRIC_COLUMNS.filter(({ key }) => results.some((r) => r.metrics[key] !== undefined));
  const best = new Map(metrics.map(({ key }) => [key, Math.max(...results.map((r) => r.metrics[key] ?? Number.NEGATIVE_INFINITY))]));
  const rows = results.map((result) => [
    result.method,
    ...metrics.map(({ key }) => {
      const text = formatPercent(result.metrics[key]);
      return result.metrics[key] === best.get(key) ? `**${text}**` : text;
    }),
    `${result.trainSeconds.toFixed(1)} s`,
    Number.isFinite(result.finalLoss) ? result.finalLoss.toPrecision(4) : '—',
  ]);
  const settings: [string, string | number | boolean][] = [
    ['model', context.model],
    ['cut', context.cut],
    ['dataset', context.dataset],
    ['seed', context.seed],
    ['backend', context.backend],
    ...Object.entries(context.settings ?? {}),
  ];
  return [
    '# gradfeat results',
    '',
    table(['method', ...metrics.map((m) => m.header), 'train time', 'final loss'], rows, metrics.length + 2),
    '',
    metrics.length > 0 ? 'The best value of each metric is in bold.' : 'No method reported a metric.',
    '',
    '## Settings',
    '',
    table(
      ['setting', 'value'],
      settings.map(([name, value]) => [name, String(value)]),
      0,
    ),
    '',
  ].join('\n');
}

/** A GitHub-flavoured Markdown table whose last `numericColumns` columns are right-aligned. */
function table(headers: readonly string[], rows: readonly (readonly string[])[], numericColumns: number): string {
  const line = (cells: readonly string[]) => `| ${cells.map(escapeCell).join(' | ')} |`;
  const rule = headers.map((_, i) => (i >= headers.length - numericColumns ? '---:' : '---'));
  return [line(headers), `| ${rule.join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** A pipe would end the cell and a newline the row; paths and names may hold either. */
function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}
