/**
 * Data source for the TypeORM CLI (`npm run migration:*`), compiled to
 * dist/libs/db/src/cli.js. Uses DATABASE_URL through the validated config.
 */
import { parseVars, processEnv } from '@backplane/config';
import { createDataSource } from './data-source';

const { DATABASE_URL } = parseVars(['DATABASE_URL'], processEnv());
export default createDataSource({ url: DATABASE_URL, poolSize: 2, applicationName: 'backplane-migrations' });
