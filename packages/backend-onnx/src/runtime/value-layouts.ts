import type { BlockedLayout } from './blocked-layout.js';
import type { OnnxGraph } from './onnx-graph.js';
import { attribute } from './proto.js';
import { describeShape } from './symbolic-shape.js';

/** A value of the graph being traced: its static shape (-1 for the batch axis). */
export interface SymbolicTensor {
  readonly shape: readonly number[];
}

/**
 * Where one value lives: plain NCHW (row-major in its logical shape), NCHWc blocked, channels-last
 * NHWC, or (only ever derived) channels-first [C, N·h·w]. A value holds at least one of the first
 * three; the others are made from it on first use, once.
 */
export interface Layouts {
  plain?: string;
  blocked?: string;
  channelsLast?: string;
  channelsFirst?: string;
}

/**
 * A value not written out yet: `small` broadcast to its shape (a mean's transpose), or a comparison's
 * float 1/0 whose boolean `condition` is kept. `write` produces it on its first use that cannot take
 * it as it is.
 */
export interface Deferred {
  readonly write: () => SymbolicTensor;
  readonly small?: SymbolicTensor;
  readonly condition?: Condition;
}

/** A boolean tensor by ONNX name, in plain or blocked layout (ONNX Runtime reorders float tensors only). */
export interface Condition {
  readonly name: string;
  readonly blocked: boolean;
}

/**
 * The bookkeeping of a trace's values: which ONNX names hold each value in which layout, the
 * conversions between layouts (each made once, on first use), and values deferred until a use needs
 * them written out. It decides nothing about how kernels are lowered.
 */
export class ValueLayouts {
  private readonly layouts = new WeakMap<SymbolicTensor, Layouts>();
  private readonly pending = new Map<SymbolicTensor, Deferred>();

  constructor(
    private readonly graph: OnnxGraph,
    private readonly blockedLayout?: BlockedLayout,
  ) {}

  create(shape: readonly number[], layouts: Layouts): SymbolicTensor {
    const handle: SymbolicTensor = { shape: [...shape] };
    this.layouts.set(handle, { ...layouts });
    return handle;
  }

  /** A value with no layout yet, which `deferred.write` makes on first use. */
  defer(shape: readonly number[], deferred: Deferred): SymbolicTensor {
    const handle = this.create(shape, {});
    this.pending.set(handle, deferred);
    return handle;
  }

  /** How a value was deferred, if it still is. */
  deferred(x: SymbolicTensor): Deferred | undefined {
    return this.pending.get(x);
  }

  /** The value's layouts, writing a deferred value out first. */
  layoutsOf(x: SymbolicTensor): Layouts {
    const layouts = this.own(x);
    const pending = this.pending.get(x);
    if (pending) {
      this.pending.delete(x);
      Object.assign(layouts, this.layoutsOf(pending.write()));
    }
    return layouts;
  }

  /** The value's layouts as they are (a deferred value has none), after checking it belongs to this trace. */
  own(x: SymbolicTensor): Layouts {
    const layouts = this.layouts.get(x);
    if (!layouts)
      throw new Error(
        `a value of shape ${describeShape(x?.shape ?? [])} does not belong to this trace (was it created by another program or backend?)`,
      );
    return layouts;
  }

  /** The value in plain NCHW layout, converted once if it only exists in another. */
  plain(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    if (layouts.plain === undefined) {
      if (layouts.blocked !== undefined) {
        layouts.plain = onePixel(x.shape) ? layouts.blocked : this.requireBlocked().toPlain(layouts.blocked, x.shape);
      } else {
        layouts.plain = this.graph.node('Transpose', [layouts.channelsLast as string], {
          attributes: [attribute.ints('perm', [0, 3, 1, 2])],
        });
      }
    }
    return layouts.plain;
  }

  /** The value in NCHWc layout (its shape must allow it), converted once if needed. */
  blocked(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    const blocked = this.requireBlocked();
    if (!blocked.holds(x.shape)) throw new Error(`${describeShape(x.shape)} cannot be stored in NCHWc blocks of ${blocked.block}`);
    if (layouts.blocked === undefined) {
      if (layouts.plain !== undefined) {
        layouts.blocked = onePixel(x.shape) ? layouts.plain : blocked.toBlocked(layouts.plain);
      } else {
        layouts.blocked = blocked.fromChannelsLast(layouts.channelsLast as string);
      }
    }
    return layouts.blocked;
  }

  /**
   * The value in NHWC layout, converted once if needed. A value whose channels fill NCHWc blocks goes
   * through the blocked layout (made once, and usually wanted by a conv anyway): MLAS's two vectorised
   * reorders cost a third of one Transpose that moves single floats ([128, 64, 8, 8]: 0.3 against 0.8 ms).
   */
  channelsLast(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    if (layouts.channelsLast === undefined) {
      layouts.channelsLast =
        layouts.blocked !== undefined || this.blockedLayout?.holds(x.shape)
          ? this.requireBlocked().toChannelsLast(this.blocked(x), x.shape)
          : this.graph.node('Transpose', [this.plain(x)], { attributes: [attribute.ints('perm', [0, 2, 3, 1])] });
    }
    return layouts.channelsLast;
  }

  /**
   * x [N, C, h, w] as [C, N·h·w] (what a pointwise filter gradient multiplies), converted once: a
   * transpose that moves whole images of a channel (h·w floats at a time), several times faster than
   * the element-wise one to channels-last.
   */
  channelsFirst(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    if (layouts.channelsFirst === undefined) {
      const [, c, h, w] = x.shape;
      const images = this.graph.node('Reshape', [this.plain(x), this.graph.int64s([-1, c, h * w])]);
      const swapped = this.graph.node('Transpose', [images], { attributes: [attribute.ints('perm', [1, 0, 2])] });
      layouts.channelsFirst = this.graph.node('Reshape', [swapped, this.graph.int64s([c, -1])]);
    }
    return layouts.channelsFirst;
  }

  /** A 5-D view of an operand that broadcasts against a blocked result of `shape`, if the operand has one. */
  blockedView(x: SymbolicTensor, shape: readonly number[]): string | undefined {
    if (x.shape.length === 0) return this.plain(x);
    if (x.shape.length > 4) return undefined;
    const [n, c, h, w] = [...Array<number>(4 - x.shape.length).fill(1), ...x.shape];
    const blocked = this.requireBlocked();
    if (c === 1) return blocked.view(this.plain(x), [n, c, h, w]);
    if (c !== shape[1]) return undefined;
    if (x.shape.length === 4) return blocked.view(this.blocked(x), x.shape);
    // [C, h, w] or [C, 1]-like operands: blocked memory only when they are one pixel per channel.
    return h === 1 && w === 1 ? blocked.view(this.plain(x), [n, c, h, w]) : undefined;
  }

  /** Whether a value exists only outside plain layout, so that working on it in place saves a conversion. */
  awayFromPlain(x: SymbolicTensor): boolean {
    return this.layoutsOf(x).plain === undefined;
  }

  /** One of the value's ONNX names, to key caches of nodes built from it. */
  key(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    return layouts.plain ?? layouts.blocked ?? (layouts.channelsLast as string);
  }

  requireBlocked(): BlockedLayout {
    if (!this.blockedLayout) throw new Error('internal: a blocked value in a graph traced without NCHWc');
    return this.blockedLayout;
  }
}

/** Whether a value of this spatial size has the same memory in every layout (one pixel per channel). */
function onePixel(shape: readonly number[]): boolean {
  return shape.length === 4 && shape[2] === 1 && shape[3] === 1;
}
