import { onnxPlugin } from '@gradfeat/backend-onnx';
import { describe, expect, it } from 'vitest';
import { firstPartyPlugins, isModulePath, pluginArguments } from '../src/plugins.js';

describe('plugin discovery', () => {
  it('takes the plugin of each installed first-party package and names the ones that are not installed', async () => {
    const { plugins, missing } = await firstPartyPlugins(['@gradfeat/backend-onnx', '@gradfeat/backend-missing']);
    expect(plugins).toEqual([{ name: '@gradfeat/backend-onnx', plugin: onnxPlugin }]);
    expect(missing).toEqual(['@gradfeat/backend-missing']);
  });

  it('reads every --plugin of a command line, before or after the command, up to --', () => {
    const argv = ['node', 'gradfeat', '--plugin', 'a.mjs', 'dataset-info', '--plugin=./b.mjs', '--dataset', 'x:y', '--', '--plugin', 'c'];
    expect(pluginArguments(argv)).toEqual(['a.mjs', './b.mjs']);
  });

  it('tells paths (relative with ./ or ../, or absolute) from package names, as Node does', () => {
    expect(['./a.mjs', '../b.js', '/abs/c.mjs'].map(isModulePath)).toEqual([true, true, true]);
    expect(['gradfeat-plugin-x', '@scope/plugin', 'plugins/a.mjs'].map(isModulePath)).toEqual([false, false, false]);
  });
});
