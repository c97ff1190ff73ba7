/**
 * Where apps read the look they should take (SMART App Launch `smart_style_url`), served by
 * SmartController. CareVault has no screen of its own to match, so these are plain, legible
 * defaults, the colours and type of its sign-in page.
 */
export const SMART_STYLE_PATH = '/smart/style.json';

/** The style properties SMART App Launch names (scopes-and-launch-context, "Styling"). */
export const SMART_STYLE = {
  color_background: '#ffffff',
  color_error: '#aa0000',
  color_highlight: '#1a5fb4',
  color_modal_backdrop: 'rgba(0, 0, 0, 0.5)',
  color_success: '#26734d',
  color_text: '#1a1a1a',
  dim_border_radius: '4px',
  dim_font_size: '16px',
  dim_spacing_size: '16px',
  font_family_body: 'system-ui, sans-serif',
  font_family_heading: 'system-ui, sans-serif',
} as const;
