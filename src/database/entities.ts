import { BreakGlassGrantEntity, BreakGlassUseEntity } from '../access/break-glass.entity.js';
import { RefreshTokenEntity } from '../auth/refresh-token.entity.js';
import { UserEntity } from '../auth/user.entity.js';
import { ResourceHistoryEntity } from '../fhir/resource-history.entity.js';
import { ResourceEntity } from '../fhir/resource.entity.js';
import { Hl7OutboxEntity } from '../hl7/outbound/hl7-outbox.entity.js';
import { Hl7MessageEntity } from '../hl7/store/hl7-message.entity.js';

/** Every TypeORM entity, listed explicitly so the app, the CLI and tests load the same set. */
export const ENTITIES = [
  ResourceEntity,
  ResourceHistoryEntity,
  UserEntity,
  RefreshTokenEntity,
  BreakGlassGrantEntity,
  BreakGlassUseEntity,
  Hl7MessageEntity,
  Hl7OutboxEntity,
];
