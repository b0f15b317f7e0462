/** The token of an `Authorization: Bearer <token>` header, or `undefined` when there is none. */
export function bearerToken(
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  const header = headers.authorization;
  return typeof header === 'string' ? /^Bearer +(\S+)$/i.exec(header)?.[1] : undefined;
}
