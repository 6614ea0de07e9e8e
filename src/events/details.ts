/** Renders a value for a change summary: strings quoted, everything else as JSON. */
export function formatValue(value: unknown): string {
  if (value === undefined || value === null) return 'none';
  return JSON.stringify(value);
}

/** `key: "a", name: "A"` — the fields a new resource was created with. */
export function describeFields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([name, value]) => `${name}: ${formatValue(value)}`)
    .join(', ');
}

/**
 * `name: "Old" → "New"; enabled: true → false` for the fields that differ, or
 * null when nothing changed: the one definition of "a change that changes nothing".
 */
export function describeChanges<T extends Record<string, unknown>>(before: T, after: Partial<T>): string | null {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(after)) {
    if (value === undefined) continue;
    const old = before[name];
    if (canonicalJson(old) !== canonicalJson(value)) parts.push(`${name}: ${formatValue(old)} → ${formatValue(value)}`);
  }
  return parts.length > 0 ? parts.join('; ') : null;
}

/** JSON with object keys sorted, so values that differ only in key order compare equal (jsonb reorders keys). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
