/** A schema object the clone script does not reproduce: tenants are created by replay instead. */
export class UncloneableSchemaError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'UncloneableSchemaError';
  }
}
