export { createCli, main } from './cli.js';
