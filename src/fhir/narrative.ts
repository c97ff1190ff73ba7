/**
 * R4's invariants on a Narrative's `div` (narrative.html, datatypes: Narrative): txt-1, only the
 * basic formatting elements and attributes of HTML 4.0 (chapters 7-11 and 15), `<a>`, images and
 * inline styles, so no script, style sheet, form, frame, object, head or body, no event handler
 * attribute and no `javascript:` URL; txt-2, some non-whitespace content; the root a `<div>` in
 * the XHTML namespace. A client that renders a narrative ran whatever script it held (stored
 * XSS). The names are those the FHIR validator allows (HAPI's `checkInnerNames`).
 *
 * One pass over the text, reading it as XML well enough to find every element and attribute:
 * tags, attributes, comments, CDATA and character references. What an HTML parser would read
 * differently (`<` or `>` in a comment or CDATA section, a processing instruction, a DOCTYPE)
 * is refused rather than interpreted.
 */

const XHTML = 'http://www.w3.org/1999/xhtml';

const ELEMENTS = new Set([
  'p', 'br', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'a', 'span', 'b', 'em', 'i', 'strong',
  'small', 'big', 'tt', 'dfn', 'q', 'var', 'abbr', 'acronym', 'cite', 'blockquote', 'hr',
  'address', 'bdo', 'kbd', 'sub', 'sup', 'ul', 'ol', 'li', 'dl', 'dt', 'dd', 'pre', 'table',
  'caption', 'colgroup', 'col', 'thead', 'tr', 'tfoot', 'tbody', 'th', 'td', 'code', 'samp',
  'img', 'map', 'area', 'ins', 'del', 's', 'u', 'center',
]); // prettier-ignore

const ATTRIBUTES = new Set([
  'title', 'style', 'class', 'id', 'lang', 'xml:lang', 'dir', 'accesskey', 'tabindex', 'xmlns',
  'span', 'width', 'align', 'valign', 'char', 'charoff', 'abbr', 'axis', 'headers', 'scope',
  'rowspan', 'colspan', 'href', 'name', 'rel', 'rev', 'shape', 'coords', 'src', 'alt',
  'longdesc', 'height', 'border', 'cellpadding', 'cellspacing', 'frame', 'rules', 'summary',
  'usemap', 'ismap', 'start', 'type', 'value', 'datetime', 'cite', 'compact', 'nowrap',
  'bgcolor', 'hspace', 'vspace', 'clear', 'noshade', 'size',
]); // prettier-ignore

/** Attributes holding a URL; the others cannot load or run anything. */
const URL_ATTRIBUTES = new Set(['href', 'src', 'longdesc', 'usemap', 'cite']);
/** A URL's scheme, if it has one; one with none (`#id`, `Binary/1`) is relative. */
const SCHEME = /^([a-z][a-z0-9+.-]*):/;
const SAFE_SCHEMES = new Set(['http', 'https', 'mailto', 'tel', 'ftp', 'urn']);
/** An image's bytes inline, as R4 lets an `<img>` have; no SVG, which may hold script. */
const IMAGE_DATA = /^data:image\/(png|gif|jpeg|webp)[;,]/;
/** What an inline style may not hold: external references, script, escapes that hide either. */
const STYLE_REFUSED = /url\s*\(|expression\s*\(|@import|javascript:|behavior|binding|\\/i;

/** A named character reference other than XML's five, which could spell what the checks look for. */
const OTHER_NAMED = /&(?!(?:amp|lt|gt|quot|apos);)[A-Za-z]/;

const NAME = /[A-Za-z_][A-Za-z0-9_.:-]*/y;
const SPACE = /[ \t\r\n]*/y;
const REFERENCE = /&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});/y;
const ATTRIBUTE_VALUE = /"([^"<]*)"|'([^'<]*)'/y;

/** Why a Narrative's div breaks txt-1 or txt-2 (naming a tag or attribute, never text), or undefined. */
export function narrativeProblem(div: string): string | undefined {
  const stack: string[] = [];
  let content = false;
  let at = 0;
  const length = div.length;
  while (at < length) {
    const lt = div.indexOf('<', at);
    const end = lt === -1 ? length : lt;
    if (end > at) {
      if (stack.length === 0) {
        if (div.slice(at, end).trim() !== '') return 'it has text outside its root <div>';
      } else {
        const problem = textProblem(div, at, end);
        if (problem) return problem;
        if (!content && /[^ \t\r\n]/.test(div.slice(at, end))) content = true;
      }
    }
    if (lt === -1) break;
    at = lt;
    if (div.startsWith('<!--', at)) {
      const close = div.indexOf('-->', at + 4);
      if (close === -1) return 'it has a comment that does not end';
      const body = div.slice(at + 4, close);
      if (/--|[<>]/.test(body) || body.endsWith('-')) {
        return 'it has a comment holding --, < or > (an HTML parser reads it otherwise)';
      }
      at = close + 3;
    } else if (div.startsWith('<![CDATA[', at)) {
      const close = div.indexOf(']]>', at + 9);
      if (close === -1) return 'it has a CDATA section that does not end';
      const body = div.slice(at + 9, close);
      if (/[<>]/.test(body))
        return 'it has a CDATA section holding < or > (an HTML parser reads it otherwise)';
      if (stack.length === 0) return 'it has text outside its root <div>';
      if (/[^ \t\r\n]/.test(body)) content = true;
      at = close + 3;
    } else if (div.startsWith('</', at)) {
      NAME.lastIndex = at + 2;
      const name = NAME.exec(div)?.[0];
      if (!name) return 'it has a < that starts no tag (write &lt;)';
      SPACE.lastIndex = at + 2 + name.length;
      SPACE.exec(div);
      if (div[SPACE.lastIndex] !== '>' || stack.pop() !== name) {
        return `it is not well-formed: </${shown(name)}> closes no open <${shown(name)}>`;
      }
      at = SPACE.lastIndex + 1;
      if (stack.length === 0 && div.slice(at).trim() !== '') {
        return 'it has content after its root <div>';
      }
    } else if (div[at + 1] === '!' || div[at + 1] === '?') {
      return 'it has a DOCTYPE, declaration or processing instruction, which a narrative may not';
    } else {
      const tag = startTag(div, at, stack.length === 0);
      if (typeof tag === 'string') return tag;
      if (tag.name === 'img') content = true;
      if (!tag.empty) stack.push(tag.name);
      else if (stack.length === 0) return 'its root <div> is empty (txt-2)';
      at = tag.next;
    }
  }
  const unclosed = stack.at(-1);
  if (unclosed !== undefined) return `it is not well-formed: <${shown(unclosed)}> is not closed`;
  if (!content) return 'it has no content but whitespace (txt-2)';
  return undefined;
}

/** A start tag at `at` (`<name attr="value" ...>` or `.../>`), or why it is refused. */
function startTag(
  div: string,
  at: number,
  root: boolean,
): { name: string; empty: boolean; next: number } | string {
  NAME.lastIndex = at + 1;
  const name = NAME.exec(div)?.[0];
  if (!name)
    return root ? 'it does not start with <div>' : 'it has a < that starts no tag (write &lt;)';
  if (root && name !== 'div') return 'its root element is not a <div>';
  if (!ELEMENTS.has(name))
    return `it has a <${shown(name)}> element, which R4 does not allow (txt-1)`;
  let position = at + 1 + name.length;
  const seen = new Set<string>();
  for (;;) {
    SPACE.lastIndex = position;
    SPACE.exec(div);
    const spaced = SPACE.lastIndex > position;
    position = SPACE.lastIndex;
    if (div[position] === '>') {
      return root && !seen.has('xmlns')
        ? 'its root <div> is not in the XHTML namespace'
        : { name, empty: false, next: position + 1 };
    }
    if (div.startsWith('/>', position)) {
      return { name, empty: true, next: position + 2 };
    }
    NAME.lastIndex = position;
    const attribute = spaced ? NAME.exec(div)?.[0] : undefined;
    if (!attribute) return `it is not well-formed: the <${shown(name)}> tag does not end`;
    if (!ATTRIBUTES.has(attribute)) {
      return `it has a ${shown(attribute)} attribute, which R4 does not allow (txt-1)`;
    }
    if (seen.has(attribute)) return `it is not well-formed: a ${attribute} attribute twice`;
    seen.add(attribute);
    SPACE.lastIndex = position + attribute.length;
    SPACE.exec(div);
    if (div[SPACE.lastIndex] !== '=')
      return `it is not well-formed: the ${attribute} attribute has no value`;
    SPACE.lastIndex += 1;
    SPACE.exec(div);
    ATTRIBUTE_VALUE.lastIndex = SPACE.lastIndex;
    const quoted = ATTRIBUTE_VALUE.exec(div);
    if (!quoted) return `it is not well-formed: the ${attribute} attribute's value is not quoted`;
    const raw = quoted[1] ?? quoted[2] ?? '';
    const problem = textProblem(raw, 0, raw.length) ?? valueProblem(name, attribute, decode(raw));
    if (problem) return problem;
    position = ATTRIBUTE_VALUE.lastIndex;
  }
}

/** A value that loads or runs something txt-1 does not allow. */
function valueProblem(element: string, attribute: string, value: string): string | undefined {
  if (attribute === 'xmlns') {
    return value === XHTML ? undefined : 'it has an element outside the XHTML namespace';
  }
  if (attribute === 'style') {
    return STYLE_REFUSED.test(value) || OTHER_NAMED.test(value)
      ? 'it has a style attribute with an external reference or script (txt-1)'
      : undefined;
  }
  if (!URL_ATTRIBUTES.has(attribute)) return undefined;
  if (OTHER_NAMED.test(value)) {
    // HTML reads `&colon;` and `&Tab;` too: `java&Tab;script&colon;` is a javascript: URL.
    return `it has a ${attribute} attribute with a named character reference other than &amp;`;
  }
  // Browsers drop these from URLs before reading the scheme (`java&#9;script:`).
  // eslint-disable-next-line no-control-regex
  const url = value.replace(/[\u0000-\u0020\u007f]/g, '').toLowerCase();
  const scheme = SCHEME.exec(url)?.[1];
  if (scheme === undefined || SAFE_SCHEMES.has(scheme)) return undefined;
  if (scheme === 'data' && element === 'img' && attribute === 'src' && IMAGE_DATA.test(url)) {
    return undefined;
  }
  return `it has a ${attribute} attribute with a ${shown(scheme)}: URL, which R4 does not allow (txt-1)`;
}

/**
 * An `&` that starts no character reference, which XML does not allow, or one that names an
 * entity XML does not define (`&nbsp;`, `&copy;`: undefined without HTML's DTD, which R4's
 * narrative.html rules out, asking for the character itself; stored until 2026-12-06).
 */
function textProblem(text: string, from: number, to: number): string | undefined {
  let amp = text.indexOf('&', from);
  while (amp !== -1 && amp < to) {
    REFERENCE.lastIndex = amp;
    if (!REFERENCE.test(text) || REFERENCE.lastIndex > to) {
      return 'it is not well-formed: an & that starts no character reference (write &amp;)';
    }
    if (OTHER_NAMED.test(text.slice(amp, REFERENCE.lastIndex))) {
      return "it has a named character reference other than XML's five (&amp; &lt; &gt; &quot; &apos;): write the character itself, or a numeric reference";
    }
    amp = text.indexOf('&', REFERENCE.lastIndex);
  }
  return undefined;
}

/** An attribute's value with its numeric character references read (`&#106;avascript:`). */
function decode(value: string): string {
  if (!value.includes('&#')) return value;
  return value.replace(/&#(x[0-9A-Fa-f]+|[0-9]+);/g, (_, code: string) => {
    const point = code.startsWith('x') ? parseInt(code.slice(1), 16) : parseInt(code, 10);
    return point <= 0x10ffff ? String.fromCodePoint(point) : '';
  });
}

/** A name from the text, cut short: it is the sender's, and only there to point at the tag. */
function shown(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}…` : name;
}
