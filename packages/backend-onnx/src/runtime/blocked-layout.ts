import { BATCH } from '@gradfeat/core/engine';
import { type ConvGeometry, convAttributes } from './conv-geometry.js';
import type { OnnxGraph } from './onnx-graph.js';
import { attribute } from './proto.js';

/** ONNX Runtime's operator domain for its NCHWc kernels (MLAS), which take run-time filters too. */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/**
 * Which MLAS NCHWc convolution algorithm runs a conv, as MlasNchwcConv chooses it from the shapes;
 * each wants its filter in its own blocked order.
 *  - 'blocked':   C/groups ≥ block, input NCHWc, filter OIHWBiBo (dense and pointwise convs)
 *  - 'depthwise': one input and one output channel per group, input NCHWc, filter OIHWBo
 *  - 'plain':     fewer input channels than a block (a network's stem), input NCHW, filter OIHWBo
 */
export type NchwcAlgorithm = 'blocked' | 'depthwise' | 'plain';

/**
 * The NCHWc ("blocked") layout of ONNX Runtime's CPU kernels: a [N, C, H, W] value is stored as
 * [N, C/B, H, W, B] with B channels innermost (16 with AVX-512, 8 with AVX2). Its convolutions run
 * directly on that layout, with constant or run-time filters alike, several times faster than im2col
 * GEMMs on the small images of a network's top layers; elementwise ops work on it as they are, and
 * per-channel broadcasts through 5-D views. A graph that uses it only runs in ONNX Runtime on a CPU
 * whose block size it was built for, so exported models never do.
 */
export class BlockedLayout {
  constructor(
    private readonly graph: OnnxGraph,
    readonly block: number,
  ) {}

  /** Whether a value of this shape can be stored blocked: NCHW with whole blocks of channels. */
  holds(shape: readonly number[]): boolean {
    return shape.length === 4 && shape[1] >= this.block && shape[1] % this.block === 0 && shape.slice(1).every((d) => d > 0);
  }

  /** The algorithm that runs this conv on blocked data, or undefined when none fits. */
  algorithm(geometry: ConvGeometry): NchwcAlgorithm | undefined {
    const { inChannels, outChannels, attrs } = geometry;
    if (outChannels % this.block !== 0) return undefined;
    if (attrs.groups === 1) {
      if (inChannels % this.block === 0) return 'blocked';
      return inChannels < this.block ? 'plain' : undefined;
    }
    return attrs.groups === inChannels && outChannels === inChannels ? 'depthwise' : undefined;
  }

  /** Emits the NCHWc Conv; `input` is blocked unless the algorithm is 'plain'. The output is blocked. */
  conv(input: string, plainFilter: string, bias: string | undefined, geometry: ConvGeometry, algorithm: NchwcAlgorithm): string {
    const filter = algorithm === 'blocked' ? this.filterOIHWBiBo(plainFilter, geometry) : this.filterOIHWBo(plainFilter, geometry);
    return this.graph.node('Conv', bias ? [input, filter, bias] : [input, filter], {
      domain: NCHWC_DOMAIN,
      attributes: convAttributes(geometry.kernel, geometry.attrs),
    });
  }

  toBlocked(plain: string): string {
    return this.graph.node('ReorderInput', [plain], { domain: NCHWC_DOMAIN });
  }

  fromChannelsLast(nhwc: string): string {
    return this.graph.node('ReorderInput', [nhwc], { domain: NCHWC_DOMAIN, attributes: [attribute.int('channels_last', 1)] });
  }

  toPlain(blocked: string, shape: readonly number[]): string {
    return this.graph.node('ReorderOutput', [blocked], { domain: NCHWC_DOMAIN, attributes: [attribute.int('channels', shape[1])] });
  }

  toChannelsLast(blocked: string, shape: readonly number[]): string {
    return this.graph.node('ReorderOutput', [blocked], {
      domain: NCHWC_DOMAIN,
      attributes: [attribute.int('channels', shape[1]), attribute.int('channels_last', 1)],
    });
  }

  /**
   * A blocked [n, C, h, w] value (or a plain one whose channels are 1 or whose memory is the same
   * blocked, i.e. h = w = 1) viewed as [n, C/B or 1, h, w, B or 1], so that NumPy broadcasting between
   * such views is broadcasting between the logical NCHW values.
   */
  view(name: string, shape: readonly number[]): string {
    const [n, c, h, w] = shape;
    const blocks = c === 1 ? [1, 1] : [c / this.block, this.block];
    return this.reshape(name, [n, blocks[0], h, w, blocks[1]]);
  }

  /** A 5-D view back to the blocked 4-D value it stands for. */
  unview(view: string, shape: readonly number[]): string {
    return this.reshape(view, shape);
  }

  /**
   * The filter gradient of a depthwise conv (stride 1, no dilation) as one depthwise NCHWc conv.
   * With a fixed batch of n, the blocked batch [n, C/B, h, w, B] is one image of n·C channels and dy
   * [n, C/B, ho, wo, B] is the OIHWBo filter of n·C outputs, so one conv (its group count n·C fixes the
   * batch) correlates every image with its own dy, and a sum over the n images is dW: no copies. With a
   * batch of any size, the images of each channel are stacked into one tall image instead, and dy the
   * same way (zero rows where the padding rows are), which costs two transposes and two pads.
   * Returns dW [C, 1, kh, kw], plain.
   */
  depthwiseFilterGradient(x: string, dy: string, geometry: ConvGeometry): string {
    const { batch, inChannels: channels, inputSize, outputSize, kernel } = geometry;
    if (batch !== BATCH) {
      const perImage = this.perImageDepthwise(x, dy, batch * channels, inputSize, outputSize, geometry.attrs.pads);
      const summed = this.graph.node(
        'ReduceSum',
        [this.reshape(perImage, [batch, channels / this.block, ...kernel, this.block]), this.graph.int64s([0])],
        {
          attributes: [attribute.int('keepdims', 0)],
        },
      );
      return this.reshape(this.toPlain(this.reshape(summed, [1, channels, ...kernel]), [1, channels, ...kernel]), [channels, 1, ...kernel]);
    }
    const [top, left, bottom, right] = geometry.attrs.pads;
    const paddedHeight = inputSize[0] + top + bottom;
    const paddedWidth = inputSize[1] + left + right;
    const channelsFirst = (blocked: string, size: readonly number[]) =>
      this.graph.node('Transpose', [this.view(blocked, [BATCH, channels, ...size])], {
        attributes: [attribute.ints('perm', [1, 0, 2, 3, 4])],
      });
    const pad = (value: string, begins: readonly number[], ends: readonly number[]) =>
      [...begins, ...ends].every((p) => p === 0) ? value : this.graph.node('Pad', [value, this.graph.int64s([...begins, ...ends])]);
    const tall = this.reshape(pad(channelsFirst(x, inputSize), [0, 0, top, left, 0], [0, 0, bottom, right, 0]), [
      1,
      channels,
      -1,
      paddedWidth,
    ]);
    const rows = pad(channelsFirst(dy, outputSize), [0, 0, 0, 0, 0], [0, 0, paddedHeight - outputSize[0], 0, 0]);
    const filter = this.reshape(rows, [channels, 1, -1, outputSize[1]]);
    const gradient = this.graph.node('Conv', [tall, filter], {
      domain: NCHWC_DOMAIN,
      attributes: [attribute.ints('pads', [0, 0, kernel[0] - 1, 0]), attribute.int('group', channels)],
    });
    return this.reshape(this.toPlain(gradient, [1, channels, ...kernel]), [channels, 1, ...kernel]);
  }

  /**
   * A blocked [n, C, h, w] value times one factor per image and channel, [n, C, 1, 1] in plain layout,
   * as n·C 1×1 filters of perImageDepthwise (one-pixel plain memory is their OIHWBo order). ONNX Runtime's
   * broadcasting Mul walks such a product in spans of one block (16 floats) and takes five times as
   * long ([64, 256, 7, 7]: 0.23 against 0.05 ms). The same products, bit for bit: each output is one
   * multiplication. Its group count fixes the batch size.
   */
  timesPerImageChannel(blocked: string, factors: string, [n, c, h, w]: readonly number[]): string {
    return this.reshape(this.perImageDepthwise(blocked, factors, n * c, [h, w], [1, 1], [0, 0, 0, 0]), [n, c, h, w]);
  }

  /**
   * Each image correlated with its own depthwise filters, for a fixed batch: blocked images
   * [n, C/B, h, w, B] are one image of n·C channels, and blocked filters [n, C/B, kh, kw, B] (or plain
   * ones of one pixel) are the OIHWBo order of n·C single-channel filters, so one depthwise NCHWc conv
   * with n·C groups does it with no copies. Returns [1, n·C, ho, wo], blocked.
   */
  private perImageDepthwise(
    images: string,
    filters: string,
    groups: number,
    imageSize: readonly number[],
    filterSize: readonly number[],
    pads: readonly number[],
  ): string {
    return this.graph.node('Conv', [this.reshape(images, [1, groups, ...imageSize]), this.reshape(filters, [groups, 1, ...filterSize])], {
      domain: NCHWC_DOMAIN,
      attributes: [attribute.ints('kernel_shape', filterSize), attribute.ints('pads', pads), attribute.int('group', groups)],
    });
  }

  private reshape(name: string, shape: readonly number[]): string {
    return this.graph.node('Reshape', [name, this.graph.int64s(shape.map((d) => (d === BATCH ? -1 : d)))]);
  }

  /**
   * OIHW → OIHWBiBo: blocks of output and input channels, input-channel-major within a block pair.
   * ReorderInput (MLAS's vectorised NCHW → NCHWc) moves each output channel block innermost, viewing
   * the filter as [O/B images, B channels, I, kh·kw]; what is left, taps before the input channels of a
   * block, moves whole blocks (none for a pointwise filter). Four times faster than one Transpose that
   * moves single floats ([512, 512, 3, 3]: 2.9 against 11.7 ms). A constant filter takes that one
   * Transpose instead: ONNX Runtime folds it into an initializer when the session loads, where it would
   * run a ReorderInput (not an ONNX operator) on every step.
   */
  private filterOIHWBiBo(filter: string, { outChannels, inPerGroup, kernel }: ConvGeometry): string {
    const b = this.block;
    const taps = kernel[0] * kernel[1];
    if (this.graph.isConstant(filter)) {
      const blocks = this.reshape(filter, [outChannels / b, b, inPerGroup / b, b, taps]);
      const moved = this.graph.node('Transpose', [blocks], { attributes: [attribute.ints('perm', [0, 2, 4, 3, 1])] });
      return this.reshape(moved, [outChannels, inPerGroup, ...kernel]);
    }
    const outputBlocksInner = this.graph.node('ReorderInput', [this.reshape(filter, [outChannels / b, b, inPerGroup, taps])], {
      domain: NCHWC_DOMAIN,
    });
    if (taps === 1) return this.reshape(outputBlocksInner, [outChannels, inPerGroup, ...kernel]);
    const tapsOutward = this.graph.node('Transpose', [this.reshape(outputBlocksInner, [outChannels / b, inPerGroup / b, b, taps, b])], {
      attributes: [attribute.ints('perm', [0, 1, 3, 2, 4])],
    });
    return this.reshape(tapsOutward, [outChannels, inPerGroup, ...kernel]);
  }

  /** OIHW → OIHWBo: blocks of output channels innermost, one ReorderInput as in filterOIHWBiBo (a constant filter: one folded Transpose). */
  private filterOIHWBo(filter: string, { outChannels, inPerGroup, kernel }: ConvGeometry): string {
    const b = this.block;
    const reordered = this.graph.isConstant(filter)
      ? this.graph.node('Transpose', [this.reshape(filter, [outChannels / b, b, inPerGroup * kernel[0] * kernel[1]])], {
          attributes: [attribute.ints('perm', [0, 2, 1])],
        })
      : this.graph.node('ReorderInput', [this.reshape(filter, [outChannels / b, b, inPerGroup * kernel[0], kernel[1]])], {
          domain: NCHWC_DOMAIN,
        });
    return this.reshape(reordered, [outChannels, inPerGroup, ...kernel]);
  }
}
