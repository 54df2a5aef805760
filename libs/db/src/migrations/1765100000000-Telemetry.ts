import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Placeholder registered ahead of its content so two sessions can fill their own file. */
export class Telemetry1765100000000 implements MigrationInterface {
  public async up(_q: QueryRunner): Promise<void> {}
  public async down(_q: QueryRunner): Promise<void> {}
}
