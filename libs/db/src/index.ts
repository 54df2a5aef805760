export {
  createDataSource,
  dataSourceOptions,
  MIGRATION_LOCK_KEY,
  pingDatabase,
  runMigrationsLocked,
  type DataSourceInput,
} from './data-source';
export { appLoginUrl, assertSafeAppLogin, openAppDataSource, UnsafeAppLoginError } from './app-login';
export * from './entities';
export { MIGRATIONS } from './migrations';
export { KeyringMismatchError, verifyKeyring } from './keyring-check';
export { isTransientDbError } from './transient';
export {
  assertKeysAvailable,
  ENCRYPTED_VALUES,
  missingKeyIds,
  rotateKeys,
  type RotationProgress,
  type RotationResult,
} from './key-rotation';
export {
  APP_DB_ROLE,
  Database,
  OneStatementError,
  TenantScope,
  type PlatformTx,
  type TenantTx,
  type Tx,
} from './tenancy';
export * from './repositories';
