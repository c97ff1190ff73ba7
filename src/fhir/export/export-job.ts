import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import type { ExportFileRow } from './export.repository.js';

export type ExportLevel = 'system' | 'patient' | 'group';

export interface ExportRequest {
  level: ExportLevel;
  groupId?: string;
  /** `_type`: undefined for every type the user may export. */
  types?: string[];
  /** `_typeFilter`: `Type?query` each; a type with filters exports what matches one of them. */
  typeFilters?: string[];
  since?: Date;
  /** `patient` (a POST's): the ids of the patients whose compartments a Patient- or
   * Group-level export is confined to. */
  patients?: string[];
  /** The kick-off URL, echoed in the manifest (it holds no PHI: types, a date, a Group id). */
  requestUrl: string;
  requestId: string;
  baseUrl: string;
}

/** A job running in this process: what its reads need beyond its row in export_job. */
export interface RunningJob {
  id: string;
  user: AuthenticatedUser;
  request: ExportRequest;
  /** The instant the export reflects: each resource as it stood then (see exportType). */
  transactionTime: Date;
  /** The patients it is confined to: all of them (`any`), a Group's, or none for a system export. */
  cohort: Cohort;
  /** `_typeFilter` queries by type. */
  filters: Map<string, string[]>;
  progress: string;
  files: ExportFileRow[];
  abort: AbortController;
}

export type Cohort = Set<string> | 'any' | undefined;

export interface ExportManifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: true;
  output: { type: string; url: string; count: number }[];
  error: { type: 'OperationOutcome'; url: string; count: number }[];
}

export const FAILED = 'The export failed; start a new one';

export function mayExport(user: AuthenticatedUser, type: string): boolean {
  return mayUseFhir(user, type, 'export');
}
