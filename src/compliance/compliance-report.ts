/** One safeguard, the control that meets it here, and whether it holds right now. */
export interface ComplianceCheck {
  id: string;
  /** The HIPAA citation, e.g. 164.312(a)(2)(iii). */
  safeguard: string;
  title: string;
  /** Where CareVault implements the control. */
  control: string;
  /** warn: holds today, but will not for long (a certificate about to expire); not a failure. */
  status: 'pass' | 'warn' | 'fail';
  /** What was measured, in a sentence; never PHI. */
  evidence: string;
}

export type Outcome = Pick<ComplianceCheck, 'status' | 'evidence'>;

export const pass = (evidence: string): Outcome => ({ status: 'pass', evidence });
export const warn = (evidence: string): Outcome => ({ status: 'warn', evidence });
export const fail = (evidence: string): Outcome => ({ status: 'fail', evidence });

export interface ComplianceReport {
  generatedAt: string;
  software: string;
  environment: string;
  database: string;
  summary: { pass: number; warn: number; fail: number };
  checks: ComplianceCheck[];
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

/** A self-contained page (no scripts, no external resources) to hand to an auditor. */
export function renderHtml(report: ComplianceReport): string {
  const rows = report.checks
    .map(
      (check) => `<tr class="${check.status}">
  <td>${escape(check.safeguard)}</td><td>${escape(check.title)}</td>
  <td class="status">${check.status.toUpperCase()}</td>
  <td>${escape(check.evidence)}</td><td><code>${escape(check.control)}</code></td>
</tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CareVault HIPAA technical safeguards report, ${escape(report.generatedAt)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: .4rem .6rem; text-align: left; vertical-align: top; }
tr.pass .status { color: #0a6b2d; font-weight: bold; }
tr.warn .status { color: #8a5a00; font-weight: bold; }
tr.fail .status { color: #b00020; font-weight: bold; }
</style>
</head>
<body>
<h1>HIPAA technical safeguards (45 CFR 164.312): live checks</h1>
<p>Generated ${escape(report.generatedAt)} by CareVault ${escape(report.software)}
(${escape(report.environment)}, database ${escape(report.database)}):
<strong>${report.summary.pass} pass, ${report.summary.warn} warn, ${report.summary.fail} fail</strong>.</p>
<table>
<thead><tr><th>Safeguard</th><th>Check</th><th>Result</th><th>Evidence</th><th>Control</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`;
}
