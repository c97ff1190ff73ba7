import { createHash } from 'node:crypto';

/** Where a line is: its file and its number. */
export interface LinePlace {
  path: string;
  line: number;
}

/**
 * The `Type/id` of every NDJSON line an import has read, and where each was first read, so that
 * a later line with the same one is reported rather than written over it. Two lines with one id
 * are two source records mapped to one (a migration's defect) or two versions of a record: the
 * later one, stored as a new version, silently replaced the first's data. Kept in memory as a
 * 12-byte digest of the key and a number per resource (about 60 bytes, 600 MB for ten million
 * resources), not the ids themselves (two or three times that); 96 bits of SHA-256 do not
 * collide among billions of keys. They are spread over SHARDS maps by the digest's first byte:
 * V8 holds at most 2^24 entries in one Map, and an import of more NDJSON resources than that
 * (16.7 million, a hospital's Observations) failed with "Map maximum size exceeded" (until
 * 2026-12-07).
 */
export class ResourceIds {
  private readonly first = Array.from({ length: SHARDS }, () => new Map<string, number>());
  private readonly paths: string[] = [];
  private readonly pathIndex = new Map<string, number>();

  /** Notes the line's `Type/id`: where it was read first, when it was read before. */
  add(type: string, id: string, place: LinePlace): LinePlace | undefined {
    const key = createHash('sha256')
      .update(`${type}/${id}`)
      .digest()
      .subarray(0, 12)
      .toString('latin1');
    const shard = this.first[key.charCodeAt(0)]!;
    const seen = shard.get(key);
    if (seen !== undefined) {
      return { path: this.paths[Math.floor(seen / LINES)]!, line: seen % LINES };
    }
    shard.set(key, this.indexOf(place.path) * LINES + place.line);
    return undefined;
  }

  private indexOf(path: string): number {
    let index = this.pathIndex.get(path);
    if (index === undefined) {
      index = this.paths.push(path) - 1;
      this.pathIndex.set(path, index);
    }
    return index;
  }
}

/** One map per value of a digest's first byte (latin1: one character, 0 to 255). */
const SHARDS = 256;

/** Lines per file the place numbers leave room for (a number is exact up to 2^53). */
const LINES = 2 ** 32;
