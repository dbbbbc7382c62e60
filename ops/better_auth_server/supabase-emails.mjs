// Better-Auth must sign in every address Supabase holds (docs/BETTER_AUTH.md section 2a).
//
// Better-Auth 1.7.25 checks every email with zod 4's `z.email()` (sign-up's body schema and handler,
// sign-in's handler, password reset, change-email, plugins), and it offers no option to change that
// rule. Zod's "practical" pattern refuses much of what GoTrue accepts (`tilde~t@`, `hash#t@`,
// `bang!t@`, `o'@`, `a..b@`, `user@localhost`): such a Supabase user, migrated or dual-written, could
// never sign in once Better-Auth is primary. Every `z.email()` shares ONE RegExp object (zod's
// `regexes.email`) and calls its `.test`; this plugin gives that object an own `test` that accepts
// zod's addresses OR GoTrue's, so every email check in the process admits the same set, and nothing
// zod accepted before is refused now.
//
// This reaches into a dependency, so it is guarded: `assertSupabaseEmailsAccepted(auth)` runs
// Better-Auth's own sign-in route at start with such an address, and a server where the patch no
// longer takes effect (a zod upgrade, a second zod copy) refuses to start instead of locking users out.

import { regexes } from "zod/v4/core";

// GoTrue's rule (supabase/auth internal/api/mail.go validateEmail -> badoux/checkmail ValidateFormat:
// the HTML5 pattern) and its 255-character limit. Go's `$` (like JS's without /m) is the end of input.
export const GOTRUE_EMAIL =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
export const GOTRUE_EMAIL_MAX = 255;

// An address the stock rule refuses and GoTrue accepts, in a domain that cannot exist (.invalid).
export const START_CHECK_EMAIL = "start~check@supabase-emails.invalid";

const stockTest = RegExp.prototype.test;

/** Whether GoTrue would accept `value` as an email (its signup / admin create rule). */
export function gotrueAccepts(value) {
  return typeof value === "string" && value.length <= GOTRUE_EMAIL_MAX && stockTest.call(GOTRUE_EMAIL, value);
}

function install() {
  const pattern = regexes.email;
  if (Object.hasOwn(pattern, "test")) {
    return; // already installed (one process may build several auth instances)
  }
  Object.defineProperty(pattern, "test", {
    value(value) {
      // zod resets lastIndex before each test; the stock pattern has no /g, so it is stateless anyway.
      return stockTest.call(pattern, value) || gotrueAccepts(value);
    },
  });
}

/** The plugin: installs the wider rule when the config is built, before any request is served. */
export function supabaseEmails() {
  install();
  return { id: "supabase-emails" };
}

/**
 * Exit-worthy check: Better-Auth's sign-in route must treat a GoTrue-only address as an address
 * (401, unknown user), not refuse it (400 INVALID_EMAIL). Needs the database (the route looks the
 * user up).
 */
export async function assertSupabaseEmailsAccepted(auth) {
  try {
    await auth.api.signInEmail({ body: { email: START_CHECK_EMAIL, password: "start-check-only" } });
  } catch (error) {
    if (error?.body?.code === "INVALID_EMAIL_OR_PASSWORD") {
      return;
    }
    throw new Error(
      `Better-Auth refuses Supabase's email addresses (${error?.body?.code ?? error}): ` +
        "the supabase-emails plugin is not in effect; users with such addresses could not sign in",
    );
  }
  throw new Error("start check signed in a user that must not exist");
}
