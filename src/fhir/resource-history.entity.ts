import { Column, Entity, PrimaryColumn } from 'typeorm';
import { Phi } from '../crypto/phi.decorator.js';

/** Every version of every resource, deletions included (as rows without content). */
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
