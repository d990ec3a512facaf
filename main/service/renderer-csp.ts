// The renderer's Content-Security-Policy, one policy for both hosts of the page: the desktop shell sends it with every
// file of its app:// scheme (main/app/app-protocol.ts), `peft-studio serve` with every file it serves
// (main/server/static-files.ts), and renderer/index.html repeats it in a <meta> (a test keeps the three equal).
// Scripts only from the app itself (no inline script, no eval); inline styles are allowed because Svelte sets style
// attributes; the page talks only to its own origin (IPC needs no network; serve's WebSocket is the same origin);
// nothing may be framed, embedded, posted or fetched from elsewhere.
export const RENDERER_CSP_DIRECTIVES = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "frame-src 'none'",
  "worker-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
] as const;

export const RENDERER_CSP = RENDERER_CSP_DIRECTIVES.join('; ');

/** What a <meta> can carry: browsers ignore frame-ancestors there (and say so in the console). */
export const RENDERER_META_CSP = RENDERER_CSP_DIRECTIVES.filter((d) => !d.startsWith('frame-ancestors')).join('; ');
