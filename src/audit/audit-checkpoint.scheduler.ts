import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { AuditChainRefusedError, AuditCheckpoints } from './audit-checkpoints.js';
import { AuditTrail } from './audit-trail.js';

/** Signs the chain head every AUDIT_CHECKPOINT_MINUTES while the service runs, and at shutdown. */
@Injectable()
export class AuditCheckpointScheduler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('AuditCheckpoints');
  private timer: NodeJS.Timeout | undefined;
  private lastSeq: number | undefined;

  constructor(
    private readonly checkpoints: AuditCheckpoints,
    private readonly trail: AuditTrail,
    private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(
      () => void this.checkpoint(),
      this.config.auditCheckpointMinutes * 60_000,
    );
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.trail.flush();
    await this.checkpoint();
  }

  private async checkpoint(): Promise<void> {
    try {
      const made = await this.checkpoints.checkpointHead(this.lastSeq);
      if (made) this.lastSeq = made.chainSeq;
    } catch (error) {
      // A refusal is the trail rebuilt or replaced under the service: alert on this message.
      this.logger.error(
        { err: { message: (error as Error).message } },
        error instanceof AuditChainRefusedError
          ? 'Audit checkpoint REFUSED: the chain does not continue the last signed checkpoint'
          : 'Audit checkpoint failed',
      );
    }
  }
}
