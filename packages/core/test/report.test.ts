import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { type LossCurve, lossCurvesSvg, markdownReport, type ResultSummary, type StepRecord } from '../src/index.js';

describe('markdownReport', () => {
  const context = { model: '/models/a|b.onnx', cut: 'layer3.2', dataset: 'cifar10:/data/cifar', seed: 7, backend: 'tfjs' };

  it('tabulates top-1/top-5 per method with the best in bold, then the settings', () => {
    const results: ResultSummary[] = [
      { method: 'activation', metrics: { top1: 0.6125, top5: 0.95 }, trainSeconds: 12.34, finalLoss: 1.23456 },
      { method: 'gradient', metrics: { top1: 0.7, top5: 0.9812 }, trainSeconds: 40, finalLoss: 0.5 },
      { method: 'finetune', metrics: { top1: 0.7, top5: 0.97 }, trainSeconds: 100.05, finalLoss: Number.NaN },
    ];
    const lines = markdownReport(results, { ...context, settings: { parametrisation: 'ntk' } }).split('\n');
    const table = lines.slice(
      lines.indexOf('| method | top-1 | top-5 | train time | final loss |'),
      lines.indexOf('| method | top-1 | top-5 | train time | final loss |') + 5,
    );
    expect(table).toEqual([
      '| method | top-1 | top-5 | train time | final loss |',
      '| --- | ---: | ---: | ---: | ---: |',
      '| activation | 61.25 % | 95.00 % | 12.3 s | 1.235 |',
      '| gradient | **70.00 %** | **98.12 %** | 40.0 s | 0.5000 |',
      '| finetune | **70.00 %** | 97.00 % | 100.0 s | — |',
    ]);
    const settings = lines.slice(lines.indexOf('## Settings') + 2);
    expect(settings).toEqual([
      '| setting | value |',
      '| --- | --- |',
      '| model | /models/a\\|b.onnx |',
      '| cut | layer3.2 |',
      '| dataset | cifar10:/data/cifar |',
      '| seed | 7 |',
      '| backend | tfjs |',
      '| parametrisation | ntk |',
      '',
    ]);
  });

  it('shows mAP columns, and only those, for multi-label results', () => {
    const report = markdownReport(
      [
        { method: 'activation', metrics: { mAP11: 0.801, mAPArea: 0.8234 }, trainSeconds: 1, finalLoss: 0.1 },
        { method: 'full', metrics: { mAP11: 0.83, mAPArea: 0.85 }, trainSeconds: 2, finalLoss: 0.09 },
      ],
      context,
    );
    expect(report).toContain('| method | mAP (11-point) | mAP (area) | train time | final loss |');
    expect(report).toContain('| activation | 80.10 % | 82.34 % | 1.0 s | 0.1000 |');
    expect(report).toContain('| full | **83.00 %** | **85.00 %** | 2.0 s | 0.09000 |');
    expect(report).not.toContain('top-1');
  });
});

interface Element {
  readonly [key: string]: unknown;
}

/** Elements always in arrays, attributes under their own names, text under '#text'. */
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  alwaysCreateTextNode: true,
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
});

function parseSvg(svg: string): Element {
  expect(XMLValidator.validate(svg)).toBe(true);
  return (parser.parse(svg).svg as Element[])[0];
}

const children = (element: Element, name: string) => (element[name] as Element[] | undefined) ?? [];
const group = (svg: Element, className: string) => children(svg, 'g').find((g) => g.class === className) as Element;
const pointsOf = (polyline: Element) => (polyline.points as string).split(' ').map((pair) => pair.split(',').map(Number));

/** Pixel → data along one axis, fitted through the first and last tick labels (value = a·pixel + b, optionally log10). */
function axisInverse(labels: Element[], coordinate: 'x' | 'y', log = false): (pixel: number) => number {
  const ticks = labels.map((label) => ({ pixel: Number(label[coordinate]), value: Number(label['#text']) }));
  const transform = (value: number) => (log ? Math.log10(value) : value);
  const [first, last] = [ticks[0], ticks[ticks.length - 1]];
  const slope = (transform(last.value) - transform(first.value)) / (last.pixel - first.pixel);
  return (pixel) => {
    const t = transform(first.value) + slope * (pixel - first.pixel);
    return log ? 10 ** t : t;
  };
}

const history = (count: number, loss: (step: number) => number): StepRecord[] =>
  Array.from({ length: count }, (_, i) => ({ step: i + 1, epoch: Math.floor(i / 100), loss: loss(i + 1) }));

describe('lossCurvesSvg', () => {
  const curves: LossCurve[] = [
    { method: 'activation', history: history(3000, (s) => 2 + 1000 / (s + 400)) },
    { method: 'gradient', history: history(120, (s) => 3 - s / 100) },
    { method: 'a<&>"b', history: history(40, (s) => 1 + (s % 3)) },
    { method: 'empty', history: [] },
  ];

  it('is well-formed, self-contained SVG with labelled axes, ticks, one polyline per non-empty curve and a legend', () => {
    const text = lossCurvesSvg(curves);
    const svg = parseSvg(text);
    expect(svg.xmlns).toBe('http://www.w3.org/2000/svg');
    expect(svg.viewBox).toBe('0 0 720 440');
    expect(text).not.toMatch(/<script|href=|url\(|@import|<image|<foreignObject/);
    const labels = children(svg, 'text').map((t) => t['#text']);
    expect(labels).toEqual(['Training loss', 'training step', 'loss']);
    const tickLabels = children(group(svg, 'tick-labels'), 'text');
    expect(tickLabels.filter((t) => t['text-anchor'] === 'middle').map((t) => t['#text'])).toEqual([0, 500, 1000, 1500, 2000, 2500, 3000]);
    expect(tickLabels.filter((t) => t['text-anchor'] === 'end').map((t) => t['#text'])).toEqual([1, 2, 3, 4, 5]);

    const polylines = children(svg, 'polyline');
    expect(polylines.map((p) => p['data-method'])).toEqual(['activation', 'gradient', 'a<&>"b']);
    expect(polylines.map((p) => pointsOf(p).length)).toEqual([500, 120, 40]);
    const legend = group(svg, 'legend');
    expect(children(legend, 'text').map((t) => String(t['#text']))).toEqual(['activation', 'gradient', 'a<&>"b', 'empty']);
    const legendColours = children(legend, 'line').map((l) => l.stroke);
    expect(polylines.map((p) => p.stroke)).toEqual(legendColours.slice(0, 3));
    expect(new Set(legendColours).size).toBe(4);
  });

  it('places points where the axes say: averages of consecutive steps when downsampled, exact otherwise', () => {
    const svg = parseSvg(lossCurvesSvg(curves));
    const tickLabels = children(group(svg, 'tick-labels'), 'text');
    const toStep = axisInverse(
      tickLabels.filter((t) => t['text-anchor'] === 'middle'),
      'x',
    );
    const toLoss = axisInverse(
      tickLabels.filter((t) => t['text-anchor'] === 'end'),
      'y',
    );
    // Coordinates carry one decimal: ±0.05 px is ±0.25 steps (3000 steps over 624 px) and ±0.0006 loss (4 over 340 px).
    const [activation, gradient] = children(svg, 'polyline').map(pointsOf);
    activation.forEach(([x, y], bucket) => {
      const steps = Array.from({ length: 6 }, (_, i) => bucket * 6 + i + 1);
      const meanLoss = steps.reduce((total, s) => total + 2 + 1000 / (s + 400), 0) / 6;
      expect(Math.abs(toStep(x) - (bucket * 6 + 3.5))).toBeLessThan(0.25);
      expect(Math.abs(toLoss(y) - meanLoss)).toBeLessThan(6e-4);
    });
    gradient.forEach(([x, y], i) => {
      expect(Math.abs(toStep(x) - (i + 1))).toBeLessThan(0.25);
      expect(Math.abs(toLoss(y) - (3 - (i + 1) / 100))).toBeLessThan(6e-4);
    });
  });

  it('draws a log-scale loss axis with decade ticks and leaves out losses ≤ 0', () => {
    const svg = parseSvg(
      lossCurvesSvg([{ method: 'full', history: history(50, (s) => (s === 10 ? 0 : 5 / s)) }], { logScale: true, title: 'VOC07 & full' }),
    );
    expect(children(svg, 'text').map((t) => t['#text'])).toEqual(['VOC07 & full', 'training step', 'loss (log scale)']);
    const yLabels = children(group(svg, 'tick-labels'), 'text').filter((t) => t['text-anchor'] === 'end');
    expect(yLabels.map((t) => t['#text'])).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
    const points = pointsOf(children(svg, 'polyline')[0]);
    expect(points).toHaveLength(49);
    const toLoss = axisInverse(yLabels, 'y', true);
    const expected = history(50, (s) => 5 / s).filter((r) => r.step !== 10);
    points.forEach(([, y], i) => {
      expect(Math.abs(toLoss(y) / expected[i].loss - 1)).toBeLessThan(2e-3);
    });
  });

  it('draws empty axes when nothing was trained', () => {
    const svg = parseSvg(lossCurvesSvg([]));
    expect(children(svg, 'polyline')).toHaveLength(0);
    expect(children(group(svg, 'tick-labels'), 'text').length).toBeGreaterThan(2);
  });
});
