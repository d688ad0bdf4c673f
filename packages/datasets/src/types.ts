/** 8-bit RGB pixels, interleaved (HWC) and row-major: what every decoder produces. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Where a sample's pixels come from: already in memory (CIFAR records) or an encoded JPEG/PNG file. */
export type ImageRef = { readonly pixels: RgbImage } | { readonly path: string };

/** Every sample's target at once; labels are small, so datasets hold them in memory. */
export type Targets =
  | { readonly kind: 'single-label'; readonly classCount: number; readonly labels: Int32Array }
  | {
      readonly kind: 'multi-label';
      readonly classCount: number;
      /** [count × classCount], 1 where the class is present (and not only as difficult objects). */
      readonly positive: Uint8Array;
      /** [count × classCount], 1 where the class appears only as difficult objects (VOC label 0): excluded from AP. */
      readonly difficult: Uint8Array;
    };

/** Single-label or multi-label. */
export type LabelKind = Targets['kind'];

/** One sample's target: a class index, or multi-hot positives with difficult flags. */
export type SampleTarget = { readonly label: number } | { readonly positive: Uint8Array; readonly difficult: Uint8Array };

/** One sample of a dataset: where its pixels are and its target. */
export interface DatasetSample {
  readonly index: number;
  readonly image: ImageRef;
  readonly target: SampleTarget;
}

/**
 * A labelled image dataset of known length. Iterating streams samples in index order; `images` gives
 * random access. Neither decodes pixels nor holds the dataset in memory: decoding and preprocessing
 * happen in an ImagePipeline, on worker threads.
 */
export interface ImageDataset extends AsyncIterable<DatasetSample> {
  /** Names the dataset and where it was read from, for messages. */
  readonly description: string;
  readonly length: number;
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  /** Where the images at `indices` are (no decoding). */
  images(indices: readonly number[]): Promise<ImageRef[]>;
  /** Every sample's target. */
  targets(): Promise<Targets>;
}
