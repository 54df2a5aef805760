import { readFileSync } from 'node:fs';
import type { OpenAPIObject } from '@nestjs/swagger';
import { beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../apps/api/src/openapi-document';
import { GENERATED_TYPES, portalTypes } from '../../scripts/portal-api';

/**
 * The OpenAPI document is built from the code without a database (what `npm run portal:api`
 * does); every operation carries a summary, and the portal's generated types are the ones
 * this document produces (a stale checked-in file fails here: run `npm run portal:api`).
 */
describe('OpenAPI document and the portal client generated from it', () => {
  let doc: OpenAPIObject;
  beforeAll(async () => {
    doc = await openApiDocument();
  });

  it('every operation has a summary', () => {
    const ops = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item as Record<string, { summary?: string }>).map(([method, op]) => ({ path, method, op })),
    );
    expect(ops.length).toBeGreaterThan(70);
    const without = ops.filter((o) => !o.op.summary?.trim()).map((o) => `${o.method.toUpperCase()} ${o.path}`);
    expect(without).toEqual([]);
  });

  it('apps/portal/src/generated/openapi.d.ts is up to date (npm run portal:api)', async () => {
    const expected = await portalTypes(doc);
    const checkedIn = readFileSync(GENERATED_TYPES, 'utf8');
    expect(checkedIn === expected, `${GENERATED_TYPES} is stale: run npm run portal:api`).toBe(true);
  });
});
