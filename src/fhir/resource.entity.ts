import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../crypto/field-cipher.js';
import { Phi } from '../crypto/phi.decorator.js';

/** The current version of every resource; a deleted resource keeps its row with no content. */
@Check('chk_resource_content_envelope', `"content" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Check('chk_resource_content_present', `"deleted" OR "content" IS NOT NULL`)
// Live ids for searches (partial, with INCLUDE, which TypeORM cannot express): created by
// migration 1764500000000 and left alone by schema comparison.
@Index('idx_resource_live', { synchronize: false })
// Live resources in last_updated order, for _lastUpdated (partial): migration 1765100000000.
@Index('idx_resource_last_updated', { synchronize: false })
@Entity('resource')
export class ResourceEntity {
  @PrimaryColumn('text')
  resourceType!: string;

  @PrimaryColumn('text')
  id!: string;

  @Column('integer')
  versionId!: number;

  @Column('timestamptz')
  lastUpdated!: Date;

  @Column('boolean')
  deleted!: boolean;

  /** The resource JSON; bound to the version so an old ciphertext cannot pass for the current one. */
  @Phi({ bindTo: ['versionId'] })
  @Column('text', { nullable: true })
  content!: string | null;
}
