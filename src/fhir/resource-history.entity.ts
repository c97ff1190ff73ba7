import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../crypto/field-cipher.js';
import { Phi } from '../crypto/phi.decorator.js';

/** The interactions that write a version, as a history entry's `request.method` names them. */
export const VERSION_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type VersionMethod = (typeof VERSION_METHODS)[number];

/** Every version of every resource, deletions included (as rows without content). */
@Check(
  'chk_resource_history_method',
  `"method" IN (${VERSION_METHODS.map((method) => `'${method}'`).join(', ')})`,
)
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

  /** What wrote the version; null for versions written before it was kept (2026-12-05). */
  @Column('text', { nullable: true })
  method!: VersionMethod | null;
}
