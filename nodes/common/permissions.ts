// Node-RED's permission scopes, as its admin API reads them (editor-api auth/permissions): a user's
// scope is "*", a list, a permission itself, or "read"/"write" (every "<x>.read" / "<x>.write").
// Used where the package decides by itself who may see something (the sidebar's comms push), so
// that it grants exactly what RED.auth.needsPermission grants on the HTTP routes.
const READ_RE = /^((.+)\.)?read$/;
const WRITE_RE = /^((.+)\.)?write$/;

export function scopeAllows(scope: unknown, permission: string): boolean {
  if (Array.isArray(scope)) return scope.some((s) => scopeAllows(s, permission));
  if (typeof scope !== 'string') return false;
  if (scope === '*' || scope === permission) return true;
  if (scope === 'read' || scope === '*.read') return READ_RE.test(permission);
  if (scope === 'write' || scope === '*.write') return WRITE_RE.test(permission);
  return false;
}
