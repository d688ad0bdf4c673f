import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitepress';
import { apiSidebarsFrom } from './api-sidebar.js';
import { siteModelsDevServer, writeSiteModels } from './mobilenet.js';

const guide = [
  {
    text: 'Guide',
    items: [
      { text: 'Overview', link: '/' },
      { text: 'Installing', link: '/guide/install' },
      { text: 'Concepts', link: '/guide/concepts' },
      { text: 'Command line', link: '/guide/cli' },
      { text: 'Workflows', link: '/guide/workflows' },
      { text: 'Importing models', link: '/guide/models' },
      { text: 'Datasets and the feature cache', link: '/guide/datasets' },
      { text: 'Backends', link: '/guide/backends' },
      { text: 'Plugins', link: '/guide/plugins' },
      { text: 'Running on a cluster', link: '/guide/cluster' },
      { text: 'Numerical checks', link: '/guide/numerical-checks' },
      { text: 'Results', link: '/guide/results' },
      { text: 'GPU', link: '/guide/gpu' },
      { text: 'Windows and macOS', link: '/guide/platforms' },
      { text: 'In the browser', link: '/guide/browser' },
      { text: 'What gradfeat guarantees', link: '/guide/guarantees' },
    ],
  },
  { text: 'API reference', link: '/api/' },
];

export default defineConfig({
  title: 'gradfeat',
  description: 'Gradients as features for deep representation learning (Mu, Liang & Li, ICLR 2020), in TypeScript.',
  lang: 'en',
  // Browsers ask for an icon; without one they log a 404 for /favicon.ico.
  head: [['link', { rel: 'icon', type: 'image/svg+xml', href: '/favicon.svg' }]],
  themeConfig: {
    nav: [
      { text: 'Install', link: '/guide/install' },
      { text: 'Guide', link: '/guide/concepts' },
      { text: 'CLI', link: '/guide/cli' },
      { text: 'API', link: '/api/' },
    ],
    sidebar: {
      ...apiSidebarsFrom(fileURLToPath(new URL('../api/navigation.json', import.meta.url))),
      '/': guide,
    },
    // The local (MiniSearch) index is built into the site: no hosted search service, nothing fetched.
    search: { provider: 'local' },
    outline: { level: [2, 3] },
  },
  vite: {
    // The browser page's worker imports onnxruntime-web's builds on demand, which needs module workers.
    worker: { format: 'es' },
    plugins: [siteModelsDevServer('/')],
  },
  // MobileNet's weights come from ../shared at build time (see mobilenet.ts); without it the page says so.
  async buildEnd(site) {
    if (!(await writeSiteModels(site.outDir))) console.warn('../shared not found: the browser page will say that its model is missing');
  },
});
