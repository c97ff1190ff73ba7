import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { ResourceEntity } from '../resource.entity.js';

export interface PageRow {
  id: string;
  keys: string[];
}

/** SQL of searches: matching ids with their sort keys, counts, and reference lookups. */
@Injectable()
export class SearchRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  async page(
    where: string,
    values: unknown[],
    sortSql: readonly string[],
    order: string,
    limit: number,
  ): Promise<PageRow[]> {
    const keys = sortSql.map((sql, i) => `(${sql})::text AS k${i}`).join(', ');
    const rows: Record<string, string>[] = await this.unitOfWork.manager.query(
      `SELECT r.id, ${keys} FROM resource r WHERE ${where} ORDER BY ${order} LIMIT ${Math.trunc(limit)}`,
      values,
    );
    return rows.map((row) => ({ id: row['id']!, keys: sortSql.map((_, i) => row[`k${i}`]!) }));
  }

  async count(where: string, values: unknown[]): Promise<number> {
    const rows: { n: number }[] = await this.unitOfWork.manager.query(
      `SELECT count(*)::int AS n FROM resource r WHERE ${where}`,
      values,
    );
    return rows[0]?.n ?? 0;
  }

  /** Current, not deleted resources by id, decrypted, in the order of `ids`. */
  async load(type: string, ids: readonly string[]): Promise<ResourceEntity[]> {
    if (ids.length === 0) {
      return [];
    }
    const rows = await this.unitOfWork.manager.findBy(ResourceEntity, {
      resourceType: type,
      id: In([...ids]),
      deleted: false,
    });
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id)).filter((row): row is ResourceEntity => row !== undefined);
  }

  /** What the given resources point to through a reference parameter (_include). */
  targets(
    sourceType: string,
    sourceIds: readonly string[],
    param: string,
    targetType: string | undefined,
    limit: number,
  ): Promise<{ type: string; id: string }[]> {
    return this.unitOfWork.manager.query(
      `SELECT DISTINCT target_type AS type, target_id AS id FROM search_reference
       WHERE resource_type = $1 AND resource_id = ANY($2::text[]) AND param = $3
         AND ($4::text IS NULL OR target_type = $4) LIMIT ${Math.trunc(limit)}`,
      [sourceType, sourceIds, param, targetType ?? null],
    );
  }

  /** Every reference to one resource: which resource points to it, through which parameter. */
  referencing(
    targetType: string,
    targetId: string,
    limit: number,
  ): Promise<{ type: string; id: string; param: string }[]> {
    return this.unitOfWork.manager.query(
      `SELECT resource_type AS type, resource_id AS id, param FROM search_reference
       WHERE target_type = $1 AND target_id = $2 LIMIT ${Math.trunc(limit)}`,
      [targetType, targetId],
    );
  }

  /** Resources of a type that point to the given ones through a parameter (_revinclude). */
  sources(
    sourceType: string,
    param: string,
    targetType: string,
    targetIds: readonly string[],
    limit: number,
  ): Promise<{ type: string; id: string }[]> {
    return this.unitOfWork.manager.query(
      `SELECT DISTINCT resource_type AS type, resource_id AS id FROM search_reference
       WHERE resource_type = $1 AND param = $2 AND target_type = $3 AND target_id = ANY($4::text[])
       LIMIT ${Math.trunc(limit)}`,
      [sourceType, param, targetType, targetIds],
    );
  }
}
