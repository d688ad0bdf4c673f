export * from './blobs.js';
export * from './coordinator.js';
export * from './protocol.js';
export * from './redis.js';
export * from './worker.js';
