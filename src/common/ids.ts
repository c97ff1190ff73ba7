const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A lower-case UUID as the server makes them (export jobs, backend clients): anything else cannot exist. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
