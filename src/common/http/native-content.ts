/**
 * A request body in a format of its own rather than JSON (a PDF, an image, a CDA document): what
 * FHIR R4 lets a client POST or PUT to /Binary instead of the Binary resource's JSON.
 */
export class NativeContent {
  constructor(
    readonly data: Buffer,
    readonly contentType: string,
  ) {}
}
