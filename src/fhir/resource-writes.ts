import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import type { FhirResource } from './fhir-types.js';

/** A resource version as it was just stored, with who stored it. */
export interface ResourceWrite {
  user: AuthenticatedUser;
  resource: FhirResource;
  created: boolean;
}

export type ResourceWriteListener = (write: ResourceWrite) => Promise<void>;

/** A resource just deleted: its last content, and the version number of the deletion. */
export interface ResourceDeletion {
  user: AuthenticatedUser;
  resource: FhirResource;
  versionId: number;
}

export type ResourceDeletionListener = (deletion: ResourceDeletion) => Promise<void>;

/** Resources of one type about to be deleted together, by id, in the deleting transaction. */
export type ResourceDeletingListener = (type: string, ids: readonly string[]) => Promise<void>;

/** Runs `work`, told of the deletions it makes in transactions of their own, by type and id. */
export type ResourceDeletingApartWrapper = <T>(
  resources: readonly { type: string; id: string }[],
  work: () => Promise<T>,
) => Promise<T>;

/**
 * Lets other modules act on FHIR writes inside the writing transaction, so that what they
 * record (the HL7 outbox's rows, Subscription notifications) commits or rolls back with the resource. A registry rather
 * than a direct call: those modules build on the FHIR module, not the other way round.
 */
@Injectable()
export class ResourceWrites {
  private readonly listeners = new Map<string, ResourceWriteListener[]>();
  /** Listeners of whichever types their `watches` names at the time of the write. */
  private readonly anyType: {
    watches: (type: string) => boolean;
    listener: ResourceWriteListener;
  }[] = [];

  private readonly deletions = new Map<string, ResourceDeletionListener[]>();
  /** Deletion listeners of whichever types their `watches` names at the time of the deletion. */
  private readonly anyTypeDeletions: {
    watches: (type: string) => boolean;
    listener: ResourceDeletionListener;
  }[] = [];
  /** Wrappers of work whose deletions each take a transaction of their own (a batch's). */
  private readonly deletingApartWrappers: ResourceDeletingApartWrapper[] = [];
  /** Listeners told of deletions about to come together (a Bundle's, a cascade's). */
  private readonly anyTypeDeleting: {
    watches: (type: string) => boolean;
    listener: ResourceDeletingListener;
  }[] = [];

  on(type: string, listener: ResourceWriteListener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  /** A listener whose types change as the service runs (those that Subscriptions watch). */
  onAny(watches: (type: string) => boolean, listener: ResourceWriteListener): void {
    this.anyType.push({ watches, listener });
  }

  /** A listener of a type's deletions (the HL7 outbox's ADT^A29), in the deleting transaction. */
  onDelete(type: string, listener: ResourceDeletionListener): void {
    this.deletions.set(type, [...(this.deletions.get(type) ?? []), listener]);
  }

  /** A listener of the deletions of types that change as the service runs (Subscriptions'). */
  onAnyDelete(watches: (type: string) => boolean, listener: ResourceDeletionListener): void {
    this.anyTypeDeletions.push({ watches, listener });
  }

  /**
   * A listener told, before any of them runs, of the deletions a Bundle or a cascade is about
   * to make together, while every one of those resources is still there: each is still told
   * to `onAnyDelete`'s listener as it is deleted.
   */
  onAnyDeleting(watches: (type: string) => boolean, listener: ResourceDeletingListener): void {
    this.anyTypeDeleting.push({ watches, listener });
  }

  /**
   * A wrapper run around work that makes deletions in transactions of their own (a batch
   * Bundle's entries): told of them ahead, it may learn what it needs of them in one go.
   */
  onDeletingApart(wrapper: ResourceDeletingApartWrapper): void {
    this.deletingApartWrappers.push(wrapper);
  }

  /**
   * Runs `work`, which deletes `resources` each in a transaction of its own (a batch Bundle's
   * DELETE entries, each on its own), within the wrappers told of them: outside a transaction.
   */
  deletingApart<T>(
    resources: readonly { type: string; id: string }[],
    work: () => Promise<T>,
  ): Promise<T> {
    return this.deletingApartWrappers.reduceRight<() => Promise<T>>(
      (inner, wrapper) => () => wrapper(resources, inner),
      work,
    )();
  }

  /** Announces deletions to come in this transaction (a Bundle's, a cascade's), by type. */
  async deleting(resources: readonly { type: string; id: string }[]): Promise<void> {
    const byType = new Map<string, string[]>();
    for (const { type, id } of resources) byType.set(type, [...(byType.get(type) ?? []), id]);
    for (const [type, ids] of byType) {
      for (const entry of this.anyTypeDeleting) {
        if (entry.watches(type)) await entry.listener(type, [...new Set(ids)]);
      }
    }
  }

  watches(type: string): boolean {
    return this.listeners.has(type) || this.anyType.some((entry) => entry.watches(type));
  }

  async deleted(deletion: ResourceDeletion): Promise<void> {
    const type = deletion.resource.resourceType;
    for (const listener of this.deletions.get(type) ?? []) {
      await listener(deletion);
    }
    for (const entry of this.anyTypeDeletions) {
      if (entry.watches(type)) await entry.listener(deletion);
    }
  }

  async written(write: ResourceWrite): Promise<void> {
    const type = write.resource.resourceType;
    for (const listener of this.listeners.get(type) ?? []) {
      await listener(write);
    }
    for (const entry of this.anyType) {
      if (entry.watches(type)) await entry.listener(write);
    }
  }
}
