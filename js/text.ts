// Strings that must survive UTF-8: scope names (encoded in wasm) and the
// keys a Signer binds. A lone surrogate has no UTF-8 form; encoders write
// U+FFFD for it, so two different strings would become the same bytes.

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** @internal Whether `s` is well-formed Unicode (has no lone surrogate). */
export function wellFormed(s: string): boolean {
  const native = (s as { isWellFormed?: () => boolean }).isWellFormed;
  return native !== undefined ? native.call(s) : !LONE_SURROGATE.test(s);
}
