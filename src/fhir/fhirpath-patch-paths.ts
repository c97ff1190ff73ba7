/**
 * The FHIRPath a FHIRPath Patch path may use here: the resource type, element names, list
 * indexes (`[0]`), `first()`, `last()`, `ofType(Type)` and `where(…)` whose condition is
 * `true`, `false`, or `element = literal` comparisons joined by `and` (`where(system = 'email')`,
 * `where($this = 'Ana')`). That is what R4 fhirpatch.html and its examples need: a path names
 * elements of the resource. The rest of FHIRPath goes to the engine at no cost limit, and some
 * of it costs more than its size: `(Patient.extension | Patient.extension)` dedups pairwise,
 * 11.6 s of a blocked event loop on a Patient with 3,000 extensions. Everything taken here is
 * evaluated in one pass over the elements it names.
 */
export const MAX_PATCH_PATH_LENGTH = 1000;

type Token = { kind: 'name' | 'string' | 'number' | 'this' | 'punct'; text: string };

const TOKEN = /\s+|'(?:[^'\\]|\\.)*'|\d+(?:\.\d+)?|\$this\b|[A-Za-z_][A-Za-z0-9_]*|[.()[\]=]/y;

function tokens(path: string): Token[] | undefined {
  const found: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < path.length) {
    const match = TOKEN.exec(path);
    if (!match) return undefined;
    const text = match[0];
    const first = text.charAt(0);
    if (/\s/.test(first)) continue;
    const kind =
      first === "'"
        ? 'string'
        : /\d/.test(first)
          ? 'number'
          : first === '$'
            ? 'this'
            : /[A-Za-z_]/.test(first)
              ? 'name'
              : 'punct';
    found.push({ kind, text });
  }
  return found;
}

/** Whether a FHIRPath Patch path keeps to the grammar above. */
export function isPatchPath(path: string): boolean {
  if (path.length > MAX_PATCH_PATH_LENGTH) return false;
  const list = tokens(path);
  if (!list) return false;
  let at = 0;
  const peek = (): Token | undefined => list[at];
  const take = (text: string): boolean => {
    if (list[at]?.kind === 'string' || list[at]?.text !== text) return false;
    at++;
    return true;
  };
  const name = (): string | undefined => (list[at]?.kind === 'name' ? list[at++]!.text : undefined);
  const index = (): boolean => !take('[') || (list[at++]?.kind === 'number' && take(']'));
  const literal = (): boolean => {
    const token = list[at++];
    return (
      token?.kind === 'string' ||
      token?.kind === 'number' ||
      (token?.kind === 'name' && (token.text === 'true' || token.text === 'false'))
    );
  };
  /** `element.child = literal` or `$this = literal`: no functions, no operators but `=`. */
  const comparison = (): boolean => {
    if (peek()?.kind === 'this') at++;
    else {
      if (!name() || peek()?.text === '(') return false;
      while (take('.')) if (!name() || peek()?.text === '(') return false;
    }
    return take('=') && literal();
  };
  const condition = (): boolean => {
    if (take('true') || take('false')) return true;
    do if (!comparison()) return false;
    while (take('and'));
    return true;
  };
  const step = (): boolean => {
    const element = name();
    if (!element) return false;
    if (take('(')) {
      switch (element) {
        case 'first':
        case 'last':
          break;
        case 'ofType':
          if (!name()) return false;
          break;
        case 'where':
          if (!condition()) return false;
          break;
        default:
          return false;
      }
      if (!take(')')) return false;
    }
    return index();
  };
  const head = name();
  if (!head || !/^[A-Z]/.test(head) || !index()) return false;
  while (at < list.length) {
    if (!take('.') || !step()) return false;
  }
  return true;
}
