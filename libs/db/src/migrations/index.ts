import { Foundation1763800000000 } from './1763800000000-Foundation';

/**
 * Every migration, in order. Listed explicitly (not a glob) so the same array works from
 * compiled output, from tests and from the migration CLI.
 */
export const MIGRATIONS = [Foundation1763800000000];
