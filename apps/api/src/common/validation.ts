import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { ApiDefaultResponse } from '@nestjs/swagger';
import { z } from 'zod';
import { ApiError, type ErrorDetail } from './api-error';

/**
 * Zod is the one validation library (see docs/adr/0010-validation.md): schemas are attached
 * with `@Body({ schema })`, `@Query({ schema })`, `@Param(name, { schema })`; this global pipe
 * validates them and @nestjs/swagger turns the same schemas into the OpenAPI document.
 * Object schemas are strict, so unknown properties are refused (global whitelisting).
 */
@Injectable()
export class SchemaValidationPipe implements PipeTransform {
  async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const schema = metadata.schema;
    if (!schema) return value;
    const result = await schema['~standard'].validate(value);
    if (!result.issues) return result.value;
    const where = metadata.type === 'body' ? 'body' : metadata.type === 'query' ? 'query' : 'path';
    const details: ErrorDetail[] = result.issues.slice(0, 20).map((i) => {
      const path = (i.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
      return {
        path: path ? `${where}.${path}` : metadata.data ? `${where}.${metadata.data}` : where,
        message: i.message,
      };
    });
    const first = details[0];
    const message =
      value === undefined && metadata.type === 'body'
        ? 'a JSON body is required'
        : `invalid ${where}: ${first ? `${first.path ?? where}: ${first.message}` : 'malformed'}`;
    throw new ApiError('validation_failed', message, details);
  }
}

/** Shared pieces of DTO schemas. */
export const uuidParam = z.uuid({ message: 'must be a UUID' });
export const limitQuery = z.coerce.number().int().min(1).max(200).default(50);
export const cursorQuery = z.string().min(1).max(512).optional();
export const text = (max: number) => z.string().trim().min(1).max(max);
export const tenantRole = z.enum(['owner', 'admin', 'operator', 'viewer']);
export const boolQuery = z.enum(['true', 'false']).transform((v) => v === 'true');

/** `{ items, nextCursor }` for any item schema. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

export const errorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    requestId: z.string(),
    details: z.array(z.object({ path: z.string().optional(), message: z.string() })).optional(),
  }),
});

/** Documents the one error body on every operation of a controller. */
export const ApiErrors = () =>
  ApiDefaultResponse({
    description: 'Any failure: `{ error: { code, message, requestId, details? } }` with a stable `code`.',
    standardSchema: errorResponse,
  });
