import { existsSync, readFileSync } from 'node:fs';
import type { DefaultTheme } from 'vitepress';

/** An entry of typedoc-plugin-markdown's navigation.json: a package, a group (Classes, Functions, …) or a page. */
export interface ApiNavigationEntry {
  readonly title: string;
  readonly path?: string;
  readonly children?: readonly ApiNavigationEntry[];
}

/** '/api/' + a generated page path without its .md suffix, as VitePress links it. */
function apiLink(path: string): string {
  return `/api/${path.replace(/(^|\/)index\.md$/, '$1').replace(/\.md$/, '')}`;
}

function sidebarItems(entries: readonly ApiNavigationEntry[]): DefaultTheme.SidebarItem[] {
  return entries.map((entry) => ({
    text: entry.title,
    ...(entry.path ? { link: apiLink(entry.path) } : {}),
    ...(entry.children ? { collapsed: true, items: sidebarItems(entry.children) } : {}),
  }));
}

/**
 * One sidebar per package: the list of packages, then the package's own groups (collapsed). Every
 * page's HTML contains its whole sidebar, so one sidebar for all packages would make each page large.
 */
export function apiSidebars(entries: readonly ApiNavigationEntry[]): DefaultTheme.SidebarMulti {
  const packages = entries.filter((entry) => entry.path);
  const packageList = {
    text: 'Packages',
    items: [{ text: 'Overview', link: '/api/' }, ...sidebarItems(packages.map(({ title, path }) => ({ title, path })))],
  };
  const sidebars: DefaultTheme.SidebarMulti = { '/api/': [packageList] };
  for (const entry of packages) {
    sidebars[apiLink(entry.path as string)] = [packageList, { text: entry.title, items: sidebarItems(entry.children ?? []) }];
  }
  return sidebars;
}

/**
 * The API sidebars from the navigation file that `pnpm docs:api` writes. Without it (e.g. `vitepress
 * dev` before typedoc ran) the sidebar says how to generate the reference instead of failing.
 */
export function apiSidebarsFrom(navigationFile: string): DefaultTheme.SidebarMulti {
  if (!existsSync(navigationFile)) {
    return { '/api/': [{ text: 'API reference not generated: run pnpm --filter @gradfeat/docs docs:api', items: [] }] };
  }
  return apiSidebars(JSON.parse(readFileSync(navigationFile, 'utf8')) as ApiNavigationEntry[]);
}
