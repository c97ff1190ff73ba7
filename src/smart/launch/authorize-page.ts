/**
 * The authorization endpoint's pages: sign-in and approval in one form, and the page for a
 * request that cannot be sent back to the app. Plain HTML with no script, every value escaped.
 */

export interface SignInPage {
  appName: string;
  /** The scopes the app will get, as granted. */
  scopes: string[];
  needsPatient: boolean;
  /** The sealed request, carried by the form. */
  request: string;
  username?: string;
  error?: string;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
.error{color:#a00;border:1px solid #a00;padding:.5rem}button{margin:1rem .5rem 0 0;padding:.5rem 1rem}
code{background:#eee;padding:0 .2rem}`;

export function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char]!,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title>
<style>${STYLE}</style></head><body>
${body}
</body></html>
`;
}

export function signInPage(view: SignInPage): string {
  const scopes = view.scopes.map((scope) => `<li><code>${escapeHtml(scope)}</code></li>`).join('');
  return page(
    'Sign in to CareVault',
    `<h1>Sign in to CareVault</h1>
<p><strong>${escapeHtml(view.appName)}</strong> asks for access to CareVault as you, with:</p>
<ul>${scopes}</ul>
${view.error ? `<p class="error" role="alert">${escapeHtml(view.error)}</p>` : ''}
<form method="post" action="/auth/authorize">
<input type="hidden" name="request" value="${escapeHtml(view.request)}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="${escapeHtml(view.username ?? '')}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="code">MFA code (if your account has MFA)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code">
${
  view.needsPatient
    ? `<label for="patient">Patient: CareVault id or an identifier (MRN)</label>
<input id="patient" name="patient" autocomplete="off" required>`
    : ''
}
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form>`,
  );
}

/** A request that cannot go back to the app (unknown app or redirect URI, expired page). */
export function errorPage(message: string): string {
  return page(
    'Authorization failed',
    `<h1>Authorization failed</h1>
<p class="error" role="alert">${escapeHtml(message)}</p>
<p>Start again from the app.</p>`,
  );
}
