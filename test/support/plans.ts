/** A node of PostgreSQL's `EXPLAIN (ANALYZE, FORMAT JSON)` plan. */
export interface PlanNode {
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plan: PlanNode;
  Plans?: PlanNode[];
}

/** Rows an EXPLAIN ANALYZE plan read from a table: those it returned and those it dropped. */
export function rowsReadOf(node: PlanNode, table: string): number {
  const own =
    node['Relation Name'] === table
      ? ((node['Actual Rows'] ?? 0) +
          (node['Rows Removed by Filter'] ?? 0) +
          (node['Rows Removed by Index Recheck'] ?? 0)) *
        (node['Actual Loops'] ?? 1)
      : 0;
  return (node.Plans ?? []).reduce((sum, child) => sum + rowsReadOf(child, table), own);
}
