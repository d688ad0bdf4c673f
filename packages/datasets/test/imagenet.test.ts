import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImageNet } from '../src/imagenet.js';
import { ImagePipeline } from '../src/pipeline.js';
import { datasetInfo } from '../src/spec.js';
import { temporaryDirectory } from './helpers.js';

/** Sorted wnid order is the class index order: tench, goldfish, kit fox, and one class with no images. */
const WNIDS = ['n01440764', 'n01443537', 'n02119789', 'n09999999'];
/** The devkit numbers synsets differently from the sorted order (ILSVRC2012_ID 1 is the kit fox). */
const ILSVRC_IDS = { n02119789: 1, n01440764: 2, n01443537: 3, n09999999: 4 } as const;
/** Labels of ILSVRC2012_val_00000001 … 00000005. */
const VALIDATION = ['n01443537', 'n02119789', 'n01440764', 'n02119789', 'n01440764'] as const;

describe('ImageNet ILSVRC-2012 layout (generated mini tree)', () => {
  let root: string;
  let remove: () => Promise<void>;
  let jpeg: Buffer;

  async function tree(name: string, files: Record<string, string | Buffer>): Promise<string> {
    const base = join(root, name);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(base, path, '..'), { recursive: true });
      await writeFile(join(base, path), content);
    }
    return base;
  }
  const trainImages = () => ({
    'train/n02119789/n02119789_2.JPEG': jpeg,
    'train/n02119789/n02119789_10.JPEG': jpeg,
    'train/n01440764/n01440764_1.JPEG': jpeg,
    'train/n01443537/n01443537_5.JPEG': jpeg,
    'train/n01443537/notes.txt': 'not an image',
  });
  const flatValidation = () =>
    Object.fromEntries(VALIDATION.map((_, i) => [`val/ILSVRC2012_val_${String(i + 1).padStart(8, '0')}.JPEG`, jpeg]));
  const expectedValidationLabels = Int32Array.from(VALIDATION, (wnid) => WNIDS.indexOf(wnid));

  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    jpeg = await sharp({ create: { width: 10, height: 6, channels: 3, background: { r: 255, g: 0, b: 0 } } })
      .jpeg({ quality: 95 })
      .toBuffer();
  });
  afterAll(() => remove());

  it('orders classes by sorted wnid from LOC_synset_mapping.txt and lists train images per class, sorted', async () => {
    const base = await tree('loc', {
      'LOC_synset_mapping.txt':
        'n09999999 volcano\nn02119789 kit fox, Vulpes macrotis\nn01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n',
      ...trainImages(),
      ...flatValidation(),
      'LOC_val_solution.csv': `ImageId,PredictionString\n${VALIDATION.map(
        (wnid, i) => `ILSVRC2012_val_${String(i + 1).padStart(8, '0')},${wnid} 1 2 30 40 ${wnid} 5 6 7 8`,
      )
        .reverse()
        .join('\n')}\n`,
    });
    const train = await openImageNet(base, { split: 'train' });
    expect(train.classNames).toEqual(WNIDS);
    expect((await train.images([0, 1, 2, 3])).map((ref) => ('path' in ref ? ref.path.slice(base.length) : ''))).toEqual([
      '/train/n01440764/n01440764_1.JPEG',
      '/train/n01443537/n01443537_5.JPEG',
      '/train/n02119789/n02119789_10.JPEG',
      '/train/n02119789/n02119789_2.JPEG',
    ]);
    expect(await train.targets()).toMatchObject({ labels: Int32Array.from([0, 1, 2, 2]), classCount: 4 });
    expect((await datasetInfo(`imagenet:${base}`, 'train')).perClassCounts).toEqual([1, 1, 2, 0]);
    const val = await openImageNet(base, { split: 'val' });
    expect(await val.targets()).toMatchObject({ labels: expectedValidationLabels });
  });

  it('maps the devkit ground truth (1-based ILSVRC2012_IDs) through ILSVRC2012_mapping.txt, not through the sorted order', async () => {
    const base = await tree('devkit', {
      ...trainImages(),
      ...flatValidation(),
      'ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt': `${VALIDATION.map((wnid) => ILSVRC_IDS[wnid]).join('\n')}\n`,
      'ILSVRC2012_mapping.txt': `${Object.entries(ILSVRC_IDS)
        .map(([wnid, id]) => `${id} ${wnid}`)
        .join('\n')}\n`,
      'synsets.txt': `${WNIDS.join('\n')}\n`,
    });
    const val = await openImageNet(base, { split: 'val' });
    expect(val.length).toBe(5);
    expect(await val.targets()).toMatchObject({ labels: expectedValidationLabels });
    const pipeline = await ImagePipeline.create(val, {
      transform: { size: [4, 4], crop: 'center', normalize: { scale: 1, offset: 0 } },
      workers: 0,
    });
    const batch = await pipeline.read([4]);
    expect(batch.images.data[0]).toBeGreaterThan(240);
    await pipeline.close();
  });

  it('reads TF-style per-image synset labels, and class-folder validation sets', async () => {
    const tf = await tree('tf', {
      ...trainImages(),
      ...flatValidation(),
      'val/imagenet_2012_validation_synset_labels.txt': `${VALIDATION.join('\n')}\n`,
    });
    expect(await (await openImageNet(tf, { split: 'val' })).targets()).toMatchObject({ labels: expectedValidationLabels });
    // Without a synset list, the classes are the train folders.
    const folders = await tree('folders', {
      ...trainImages(),
      'val/n01443537/ILSVRC2012_val_00000001.JPEG': jpeg,
      'val/n02119789/ILSVRC2012_val_00000002.JPEG': jpeg,
    });
    const val = await openImageNet(folders, { split: 'val' });
    expect(val.classNames).toEqual(WNIDS.slice(0, 3));
    expect(await val.targets()).toMatchObject({ labels: Int32Array.from([1, 2]) });
  });

  it('says what is missing or wrong', async () => {
    const unlabelled = await tree('unlabelled', { ...trainImages(), ...flatValidation(), 'ILSVRC2012_validation_ground_truth.txt': '1\n' });
    await expect(openImageNet(unlabelled, { split: 'val' })).rejects.toThrow(
      /is flat \(no class folders\) and no labels were found for it: expected LOC_val_solution.csv, .*found .*ILSVRC2012_validation_ground_truth.txt but no ILSVRC2012_mapping.txt/,
    );
    const stray = await tree('stray', { ...trainImages(), 'synsets.txt': 'n01440764\nn01443537\n' });
    await expect(openImageNet(stray, { split: 'train' })).rejects.toThrow('class folder(s) n02119789 are not among the 2 classes');
    const badList = await tree('bad-list', { ...trainImages(), 'synsets.txt': 'n01440764\ntench\n' });
    await expect(openImageNet(badList, { split: 'train' })).rejects.toThrow(
      "synsets.txt: line 2: expected a wnid ('n' and 8 digits) first, got 'tench'",
    );
    const short = await tree('short', {
      ...trainImages(),
      ...flatValidation(),
      'imagenet_2012_validation_synset_labels.txt': 'n01440764\n',
    });
    await expect(openImageNet(short, { split: 'val' })).rejects.toThrow('has no label for validation image ILSVRC2012_val_00000002.JPEG');
    await expect(openImageNet(short, { split: 'test' as 'val' })).rejects.toThrow("ImageNet splits are 'train' and 'val', not 'test'");
  });
});
