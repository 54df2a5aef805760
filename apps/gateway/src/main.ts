import 'reflect-metadata';
import { loadGatewayConfig } from '@backplane/config';
import { runApp } from '@backplane/observability';
import { composeGateway } from './compose';

runApp('gateway', () => composeGateway(loadGatewayConfig()));
