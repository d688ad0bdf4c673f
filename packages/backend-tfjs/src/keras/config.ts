import type { Pair } from '@gradfeat/core/engine';
import type { KerasLayer } from './topology.js';

/** Typed reads of one layer's config; every error names the file, the layer and its class. */
export class LayerConfig {
  constructor(
    readonly layer: KerasLayer,
    private readonly file: string,
  ) {}

  fail(message: string): never {
    throw new Error(`${this.file}: layer '${this.layer.name}' (${this.layer.className}): ${message}`);
  }

  private value(key: string, fallback: unknown): unknown {
    const value = this.layer.config[key];
    if (value === undefined || value === null) {
      if (fallback === undefined) this.fail(`config field '${key}' is missing`);
      return fallback;
    }
    return value;
  }

  number(key: string, fallback?: number): number {
    const value = this.value(key, fallback);
    if (typeof value !== 'number' || !Number.isFinite(value))
      this.fail(`config field '${key}' is ${JSON.stringify(value)}, expected a number`);
    return value;
  }

  /** A positive integer or a pair of them (Keras accepts both for sizes and strides). */
  pair(key: string, fallback?: number | Pair): Pair {
    const value = this.value(key, fallback);
    const pair = typeof value === 'number' ? [value, value] : value;
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => Number.isSafeInteger(v) && v > 0)) {
      this.fail(`config field '${key}' is ${JSON.stringify(value)}, expected a positive integer or a pair of them`);
    }
    return [pair[0], pair[1]];
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.value(key, fallback);
    if (typeof value !== 'boolean') this.fail(`config field '${key}' is ${JSON.stringify(value)}, expected true or false`);
    return value;
  }

  /** One of `allowed`; anything else is an unsupported setting. */
  choice<const C extends string>(key: string, allowed: readonly C[], fallback?: C): C {
    const value = this.value(key, fallback);
    if (!allowed.includes(value as C)) {
      this.fail(`config field '${key}' is ${JSON.stringify(value)}; gradfeat supports ${allowed.map((a) => `'${a}'`).join(', ')}`);
    }
    return value as C;
  }

  /** Layout fields: gradfeat's importer reads channels-last Keras models. */
  channelsLast(): void {
    this.choice('data_format', ['channels_last'], 'channels_last');
  }

  raw(key: string): unknown {
    return this.layer.config[key];
  }
}
