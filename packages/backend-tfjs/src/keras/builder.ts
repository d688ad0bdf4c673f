import {
  BATCH,
  formatShape,
  type HostTensor,
  type Node,
  type OpAttrs,
  type OpType,
  sameShape,
  sizeOf,
  type ValueInfo,
} from '@gradfeat/core/engine';

/**
 * A Keras tensor and where it lives in the IR. Keras is channels-last and gradfeat is NCHW, so a
 * spatial map [H, W, C] is held as an IR value [C, H, W]. Reshapes, flattens and dropout move no
 * data in either layout, so they create no node: they relabel the same IR value with a new Keras
 * shape, and a node is added only when a consumer needs a different IR shape.
 */
export interface KerasTensor {
  /** The Keras layer whose output this is (names the nodes inserted for it). */
  readonly layer: string;
  /** IR value holding it. */
  readonly value: string;
  /** Keras shape per sample, channels last. */
  readonly shape: readonly number[];
  /** Shape of the IR value per sample. */
  readonly irShape: readonly number[];
  /**
   * Set when the IR value's element order is not Keras's: the Keras tensor, viewed as the spatial map
   * [H, W, C] given here, is stored transposed to [C, H, W] (possibly flattened since).
   */
  readonly transposedFrom?: readonly [number, number, number];
}

/** A spatial map [H, W, C] held as IR [C, H, W]. */
export function spatialTensor(layer: string, value: string, [h, w, c]: readonly number[]): KerasTensor {
  // With one pixel or one channel, channels-first and channels-last orders coincide.
  const transposed = h * w > 1 && c > 1;
  return { layer, value, shape: [h, w, c], irShape: [c, h, w], transposedFrom: transposed ? [h, w, c] : undefined };
}

/** The ops the builder inserts where a consumer needs another IR shape (see `nchw`, `features`). */
export const LAYOUT_OPS: readonly OpType[] = ['Flatten', 'Reshape'];

/** Collects nodes and parameters; names nodes after Keras layers and keeps inserted names unique. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly params = new Map<string, HostTensor>();
  readonly inputs: ValueInfo[] = [];
  /** What the importer changed on the way (dropped softmax, lowered layers), for ModelMetadata. */
  readonly notes: string[] = [];
  private readonly taken = new Set<string>();
  private readonly reshaped = new Map<string, string>();

  /** @param layerNames every Keras layer name, reserved for the node that computes that layer's output */
  constructor(
    private readonly layerNames: ReadonlySet<string>,
    private readonly fail: (message: string) => never,
  ) {}

  addInput(name: string, shape: readonly number[]): void {
    this.taken.add(name);
    this.inputs.push({ name, shape: [BATCH, ...shape] });
  }

  /** A name for a node no Keras layer owns: `base`, or `base_2`, `base_3`, … */
  freshName(base: string): string {
    let name = base;
    for (let n = 2; this.taken.has(name) || this.layerNames.has(name); n++) name = `${base}_${n}`;
    return name;
  }

  addParam(key: string, value: HostTensor): string {
    if (this.params.has(key)) this.fail(`parameter '${key}' is created twice`);
    this.params.set(key, value);
    return key;
  }

  add<O extends OpType>(name: string, op: O, inputs: readonly string[], attrs: OpAttrs[O], params: Record<string, string> = {}): string {
    if (this.taken.has(name)) this.fail(`node name '${name}' is used twice`);
    this.taken.add(name);
    this.nodes.push({ name, op, inputs, attrs, params } as Node);
    return name;
  }

  /**
   * The IR value of a spatial map as NCHW [C, H, W]. Inserts a Reshape when the value has another IR
   * shape, and fails when only a transpose could produce it (the IR has none).
   */
  nchw(tensor: KerasTensor, consumer: string): string {
    if (tensor.shape.length !== 3) {
      this.fail(
        `${consumer} needs a spatial map [height, width, channels], but its input '${tensor.layer}' is ${formatShape(tensor.shape)}`,
      );
    }
    const wanted = spatialTensor(tensor.layer, tensor.value, tensor.shape);
    if (!sameOrder(tensor.transposedFrom, wanted.transposedFrom)) {
      this.fail(
        `${consumer} reads '${tensor.layer}' ${formatShape(tensor.shape)}, a reshape of data that is not laid out as this map in channels-first order; ` +
          "rearranging it needs a transpose, which gradfeat's IR does not have",
      );
    }
    return this.reshapeTo(tensor, wanted.irShape, 'nchw');
  }

  /**
   * The IR value of a Keras feature vector [F] (or [1, …, 1, F]) as IR [F], flattening if needed. Its
   * element order may be a transposed spatial map's (see `transposedFrom`): only Dense can absorb that.
   */
  features(tensor: KerasTensor, consumer: string): string {
    if (tensor.shape.slice(0, -1).some((d) => d !== 1)) {
      this.fail(`${consumer} needs a feature vector, but its input '${tensor.layer}' is ${formatShape(tensor.shape)}; add a Flatten`);
    }
    return this.reshapeTo(tensor, [sizeOf(tensor.shape)], 'flat');
  }

  /** A tensor in the IR form every consumer agrees on: NCHW for spatial maps, [F] in Keras order for vectors. */
  canonical(tensor: KerasTensor, consumer: string): string {
    if (tensor.shape.length === 3) return this.nchw(tensor, consumer);
    if (tensor.shape.length === 1) {
      if (tensor.transposedFrom) {
        this.fail(
          `${consumer} reads '${tensor.layer}', the spatial map ${formatShape(tensor.transposedFrom)} that Keras flattens channels-last and gradfeat holds channels-first; ` +
            'only a Dense layer can consume it (its weights absorb the order), anything else needs a transpose',
        );
      }
      return this.features(tensor, consumer);
    }
    return this.fail(
      `${consumer} reads '${tensor.layer}' ${formatShape(tensor.shape)}; gradfeat imports spatial maps [H, W, C] and vectors [F]`,
    );
  }

  private reshapeTo(tensor: KerasTensor, irShape: readonly number[], suffix: string): string {
    if (sameShape(tensor.irShape, irShape)) return tensor.value;
    const key = `${tensor.value} -> ${formatShape(irShape)}`;
    const existing = this.reshaped.get(key);
    if (existing) return existing;
    const name = this.freshName(`${tensor.layer}_${suffix}`);
    if (irShape.length === 1) this.add(name, 'Flatten', [tensor.value], {});
    else this.add(name, 'Reshape', [tensor.value], { shape: irShape });
    this.reshaped.set(key, name);
    return name;
  }
}

function sameOrder(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return a === undefined || b === undefined ? a === b : sameShape(a, b);
}
