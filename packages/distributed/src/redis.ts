import { Redis } from 'ioredis';

/**
 * A Redis connection for BullMQ (which needs maxRetriesPerRequest: null), after checking once that
 * the server answers, so that a wrong URL is a clear error instead of endless reconnecting.
 */
export async function connectRedis(url: string): Promise<Redis> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    throw new Error(`cannot reach Redis at ${url} (${(error as Error).message}); start redis-server there or correct --redis`);
  } finally {
    probe.disconnect();
  }
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  // Connection errors are retried by ioredis; commands fail with their own errors meanwhile.
  redis.on('error', () => {});
  return redis;
}
