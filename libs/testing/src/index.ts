export { ensureLocalServices } from './services';
export {
  createTestDatabase,
  ensureTemplateDatabase,
  templateName,
  testSettings,
  urlForDatabase,
  type TestDatabase,
} from './test-db';
