import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/**
 * A known value encrypted with the data-encryption key in use when the database was
 * first started. At start-up it tells "wrong or lost secrets.json" apart from "no
 * encrypted data yet" before anything tries to decrypt router credentials.
 */
@Entity({ name: 'keyring_check' })
export class KeyringCheckEntity {
  @PrimaryColumn({ type: 'smallint' })
  id!: number;

  @Column({ name: 'key_id', type: 'text' })
  keyId!: string;

  @Column({ type: 'text' })
  value!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
