import { patchExamples } from './openapi-examples.js';

/** Swagger decorator arguments the FHIR REST controllers share. */
export const OUTCOME = {
  description: 'OperationOutcome describing the problem',
  schema: { $ref: '#/components/schemas/OperationOutcome' },
};
export const RESOURCE = { schema: { $ref: '#/components/schemas/Resource' } };
/** An operation's input by POST: a Parameters resource. */
export const PARAMETERS = {
  schema: {
    type: 'object',
    required: ['resourceType'],
    properties: {
      resourceType: { type: 'string', enum: ['Parameters'] },
      parameter: { type: 'array', items: { type: 'object' } },
    },
  },
};
/** A patch body: JSON Patch (an array) or FHIRPath Patch (a Parameters resource). */
export const PATCH_BODY = {
  schema: { oneOf: [{ type: 'array', items: { type: 'object' } }, { type: 'object' }] },
  examples: patchExamples('Patient'),
};
export const IF_MATCH = {
  name: 'If-Match',
  required: false,
  description: 'Version ETag, e.g. W/"1", or * (412 unless the resource exists)',
};
export const TYPE_PARAM = {
  name: 'type',
  description: 'FHIR R4 resource type, e.g. Patient',
  example: 'Patient',
};
export const IF_NONE_MATCH = {
  name: 'If-None-Match',
  required: false,
  description: 'The ETag of the copy held, e.g. W/"2" (or If-Modified-Since): 304 if current',
};
export const IF_NONE_MATCH_WRITE = {
  name: 'If-None-Match',
  required: false,
  description: '* to create only (412 if it exists), or ETags it must not write over (412)',
};
export const NOT_MODIFIED = { status: 304, description: 'Not Modified: the copy held is current' };
export const CASCADE_QUERY = {
  name: '_cascade',
  required: false,
  enum: ['delete'],
  description:
    'delete: also delete every resource that refers to it, directly or through others, in one ' +
    'transaction (each checked as a delete of its own)',
};
export const CASCADE_HEADER = {
  name: 'X-Cascade',
  required: false,
  description: 'delete: the same as _cascade=delete',
};
export const CASCADED = {
  status: 200,
  description:
    'With _cascade=delete: deleted, and the OperationOutcome counts by type what went with it',
  schema: { $ref: '#/components/schemas/OperationOutcome' },
};
