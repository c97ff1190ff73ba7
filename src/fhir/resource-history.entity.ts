import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../crypto/field-cipher.js';
import { Phi } from '../crypto/phi.decorator.js';

/** Every version of every resource, deletions included (as rows without content). */
@Check('chk_resource_history_content_envelope', `"content" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Check('chk_resource_history_content_present', `"deleted" OR "content" IS NOT NULL`)
@Index('idx_resource_history_type_updated', ['resourceType', 'lastUpdated', 'id', 'versionId'])
@Index('idx_resource_history_updated', { synchronize: false })
@Entity('resource_history')
export class ResourceHistoryEntity {
  @PrimaryColumn('text')
  resourceType!: string;

  @PrimaryColumn('text')
  id!: string;

  @PrimaryColumn('integer')
  versionId!: number;

  @Column('timestamptz')
  lastUpdated!: Date;

  @Column('boolean')
  deleted!: boolean;

  @Phi()
  @Column('text', { nullable: true })
  content!: string | null;
}
