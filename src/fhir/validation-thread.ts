import type { Worker } from 'node:worker_threads';
import { AppError, type Issue } from '../common/errors/app-error.js';

/** What the worker says: that it is ready, or the outcome of the job it was given. */
export type WorkerAnswer =
  | { ready: true }
  | { valid: true }
  | { status: number; issues: Issue[] }
  /** An unexpected error's name. */
  | { failed: string };

interface Job {
  json: string;
  resolve: (invalid: AppError | undefined) => void;
  reject: (error: Error) => void;
}

export interface ValidationThreadOptions {
  /** Starts a worker that speaks WorkerAnswer (validation-worker.ts; a test's crashes or hangs). */
  start: () => Worker;
  /** How long one validation may take before its worker is replaced. */
  timeLimitMs: number;
}

/**
 * One worker thread that validates resources off the event loop, started on first use (its
 * definitions take seconds and about 170 MB to load) and kept. Jobs run one at a time, in turn.
 * A validation cannot be interrupted but by ending its thread: one past the time limit is a
 * 503 and its worker is replaced, as is a worker that dies (a 500 for the job it had).
 */
export class ValidationThread {
  private worker: Worker | undefined;
  private ready = false;
  private current: { job: Job; timer: NodeJS.Timeout } | undefined;
  private readonly queue: Job[] = [];

  constructor(private readonly options: ValidationThreadOptions) {}

  /** Undefined for a valid resource (sent as its JSON text), else the 4xx it gets. */
  validate(json: string): Promise<AppError | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ json, resolve, reject });
      this.next();
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    const stopped = new Error('The validation worker was stopped');
    this.drop(stopped);
    for (const job of this.queue.splice(0)) job.reject(stopped);
    await worker?.terminate();
  }

  private next(): void {
    if (this.current) return;
    if (this.queue.length === 0) {
      // Idle, the worker does not keep the process alive (a CLI command that is done exits).
      this.worker?.unref();
      return;
    }
    if (!this.worker) {
      this.worker = this.spawn();
      return;
    }
    if (!this.ready) return;
    const job = this.queue.shift()!;
    this.worker.ref();
    this.current = { job, timer: setTimeout(() => this.timedOut(), this.options.timeLimitMs) };
    this.worker.postMessage(job.json);
  }

  private spawn(): Worker {
    const worker = this.options.start();
    // Events of a worker already dropped (its `exit` after a time-out) concern no job.
    worker.on('message', (answer: WorkerAnswer) => {
      if (worker === this.worker) this.answered(answer);
    });
    worker.on('error', (error) => {
      if (worker === this.worker) this.failed(error);
    });
    worker.on('exit', (code) => {
      if (worker === this.worker) this.failed(new Error(`The validation worker exited (${code})`));
    });
    return worker;
  }

  private answered(answer: WorkerAnswer): void {
    if ('ready' in answer) {
      this.ready = true;
      this.next();
      return;
    }
    const current = this.current;
    if (!current) return;
    clearTimeout(current.timer);
    this.current = undefined;
    if ('failed' in answer) {
      current.job.reject(new Error(`Validation failed in the worker thread (${answer.failed})`));
    } else {
      current.job.resolve(
        'status' in answer ? new AppError(answer.status, answer.issues) : undefined,
      );
    }
    this.next();
  }

  /**
   * The worker died: the job it had fails. One that never got ready (its definitions did not
   * load) fails every waiting job, as would the next; the next validation starts another.
   */
  private failed(error: Error): void {
    const starting = !this.ready;
    this.drop(error);
    if (starting) {
      for (const job of this.queue.splice(0)) job.reject(error);
    }
    this.next();
  }

  private timedOut(): void {
    const seconds = Math.round(this.options.timeLimitMs / 1000);
    this.drop(
      AppError.of(503, 'timeout', `Validation of the resource did not finish in ${seconds} s`),
    );
    this.next();
  }

  /** Ends the worker, its job failing with `error`; the next job starts another. */
  private drop(error: Error): void {
    const { worker, current } = this;
    this.worker = undefined;
    this.ready = false;
    this.current = undefined;
    if (current) {
      clearTimeout(current.timer);
      current.job.reject(error);
    }
    void worker?.terminate();
  }
}
