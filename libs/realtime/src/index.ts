/**
 * @backplane/realtime: publishing tenant events (sequenced, with a bounded backlog for
 * reconnecting clients) and site-stream rows to portal sockets on every api replica.
 *
 *   const rt = new RealtimePublisher({ redis, prefix: 'bp:' });
 *   await rt.publish(tenantId, { type: 'site.status', data: { siteId, online: true } });
 *   rt.emitSite(siteId, 'telemetry', sample);
 *   rt.disconnect(userRoom(userId)); // after a revocation committed
 *
 * And the client side: `RealtimeClient` (client.ts, browser-safe: the portal imports that
 * file directly) keeps lastSeq, fills gaps with `resume` and reports `resync`.
 */
export {
  apiKeyRoom,
  classifySeq,
  DEFAULT_BACKLOG,
  RealtimePublisher,
  realtimeKeys,
  replaySince,
  sessionRoom,
  userRoom,
} from './publisher';
export type { RealtimeKeys, RealtimePublisherOptions, Replay } from './publisher';
export { RealtimeClient, RealtimeConnectError } from './client';
export { JOB_FEED_INTERVAL_MS, JobProgressFeed } from './job-feed';
export type { JobDetailSink, JobProgressFeedOptions } from './job-feed';
export type { RealtimeClientOptions } from './client';
