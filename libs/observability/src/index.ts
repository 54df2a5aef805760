export {
  correlationIdFrom,
  createLogger,
  currentCorrelationId,
  NestPinoLogger,
  withCorrelation,
  type CreateLoggerOptions,
  type LogContext,
} from './logger';
export { createMetricsRegistry, METRICS_REGISTRY, OpsModule, READINESS_CHECKS, type ReadinessCheck } from './ops';
export { createHttpApp, trustProxySetting, type HttpApp, type HttpAppOptions } from './http';
export { EXIT_CONFIG, isConfigError, runMain } from './main';
export { runApp, shutdownOnce, type AppLifecycle } from './lifecycle';
export { postgresCheck, redisCheck } from './checks';
export { createRedis } from './redis';
