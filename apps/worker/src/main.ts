import 'reflect-metadata';
import { loadWorkerConfig } from '@backplane/config';
import { runApp } from '@backplane/observability';
import { composeWorker } from './compose';

runApp('worker', () => composeWorker(loadWorkerConfig()));
