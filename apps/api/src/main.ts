import 'reflect-metadata';
import { loadApiConfig } from '@backplane/config';
import { runApp } from '@backplane/observability';
import { composeApi } from './compose';

runApp('api', () => composeApi(loadApiConfig()));
