// The storno-security demo page: every flow through the server's JSON API, same origin.
// The access token stays in this page's memory; the refresh token is an HttpOnly cookie
// ("cookie": true), which this script can neither read nor leak.
"use strict";

const state = { access: null, mfaToken: null, mfaPasskey: null, mfaOn: false };
const $ = (id) => document.getElementById(id);

function show(message) {
  $("status").textContent = message;
  $("error").textContent = "";
}

function fail(error) {
  $("error").textContent = error.message || String(error);
}

async function api(method, path, body, credential) {
  const headers = { "Content-Type": "application/json" };
  const auth = credential || (state.access && "Bearer " + state.access);
  if (auth) headers.Authorization = auth;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = response.status === 204 ? {} : await response.json();
  if (!response.ok) {
    throw new Error(`${response.status} ${answer.code}: ${answer.error}`);
  }
  return answer;
}

// -- WebAuthn: the server speaks the WebAuthn JSON forms --------------------------------------

function creationOptions(json) {
  return PublicKeyCredential.parseCreationOptionsFromJSON(json);
}

function requestOptions(json) {
  return PublicKeyCredential.parseRequestOptionsFromJSON(json);
}

async function assertion(optionsJson) {
  const credential = await navigator.credentials.get({ publicKey: requestOptions(optionsJson) });
  return credential.toJSON();
}

// -- signed in or out --------------------------------------------------------------------------

async function signedIn(answer) {
  state.access = answer.access_token;
  state.mfaToken = null;
  $("mfa").hidden = true;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  await loadAccount();
}

function signedOut(message) {
  Object.assign(state, { access: null, mfaToken: null, mfaPasskey: null, mfaOn: false });
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  for (const id of ["totp-enrol", "backup-codes-box", "apikey-box"]) $(id).hidden = true;
  show(message);
}

async function loadAccount() {
  const me = await api("GET", "/api/v1/me");
  state.mfaOn = me.mfa.enabled;
  $("me-email").textContent = me.user.email;
  $("me-mfa").textContent = me.mfa.enabled ? "MFA on: " + me.mfa.methods.join(", ") : "MFA off";
  const passkeys = await api("GET", "/api/v1/passkeys");
  fill("passkeys", passkeys.passkeys, (p) => `${p.name}${p.flagged ? " (flagged: cloned?)" : ""}`);
  const keys = await api("GET", "/api/v1/api-keys");
  fill("apikeys", keys.api_keys, (k) => `${k.name} (${k.scope}) ${k.key_id}`);
  show("Signed in as " + me.user.email);
}

function fill(id, items, text) {
  const list = $(id);
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = text(item);
    return li;
  }));
}

function loginAnswer(answer) {
  if (!answer.mfa_required) return signedIn(answer);
  state.mfaToken = answer.mfa_token;
  state.mfaPasskey = answer.passkey_options || null;
  $("mfa-methods").textContent = answer.mfa_methods.join(", ");
  $("mfa-passkey").hidden = !state.mfaPasskey;
  $("mfa").hidden = false;
  show("Password accepted: a second factor is needed.");
}

// The proof a sensitive act asks for: a step-up with a fresh code once MFA is on, else the
// current password.
async function proof(action) {
  if (!state.mfaOn) return { current_password: $("proof-password").value };
  const code = $("proof-code").value.trim();
  $("proof-code").value = "";
  const bought = await api("POST", "/api/v1/mfa/step-up", { action, method: "totp", code });
  return { step_up_token: bought.step_up_token };
}

// -- the buttons -------------------------------------------------------------------------------

const actions = {
  async "register-form"() {
    const email = $("register-email").value;
    const answer = await api("POST", "/api/auth/register", {
      email,
      password: $("register-password").value,
      name: $("register-name").value,
      cookie: true,
    });
    $("login-email").value = email;
    if (answer.access_token) {
      await signedIn(answer);
      show(`Registered as ${email}. Confirm your address with the mailed link.`);
    } else {
      show(`Registered as ${email}: confirm your address, then log in.`);
    }
  },
  async "read-mail"() {
    const email = $("register-email").value || $("login-email").value || $("me-email").textContent;
    const answer = await api("GET", "/demo/mail?to=" + encodeURIComponent(email));
    for (const mail of answer.mail) {
      const found = /\/confirm-email\?token=[A-Za-z0-9_.%~-]+/.exec(mail.body);
      if (found) {
        $("confirm-link").href = found[0];
        $("confirm-link").hidden = false;
        show("Found the confirmation link.");
        return;
      }
    }
    show("No confirmation mail for that address yet.");
  },
  async "login-form"() {
    const body = { email: $("login-email").value, password: $("login-password").value };
    $("login-password").value = "";
    await loginAnswer(await api("POST", "/api/auth", { ...body, cookie: true }));
  },
  async "passkey-login"() {
    const { options } = await api("POST", "/api/auth/passkey/login/options", {});
    const credential = await assertion(options);
    await loginAnswer(await api("POST", "/api/auth/passkey/login", { credential, cookie: true }));
  },
  async "mfa-totp"() {
    await verifyMfa({ method: "totp", code: $("mfa-code").value.trim() });
  },
  async "mfa-backup"() {
    await verifyMfa({ method: "backup_code", code: $("mfa-code").value.trim() });
  },
  async "mfa-passkey"() {
    await verifyMfa({ method: "passkey", credential: await assertion(state.mfaPasskey) });
  },
  async logout() {
    await api("POST", "/api/auth/logout", {});
    signedOut("Signed out.");
  },
  async "totp-setup"() {
    const answer = await api("POST", "/api/v1/mfa/totp/setup", await proof("mfa.enrol"));
    $("totp-secret").textContent = answer.secret;
    $("totp-uri").textContent = answer.otpauth_uri;
    $("totp-enrol").hidden = false;
    show("Add the secret to your authenticator app, then type a code.");
  },
  async "totp-confirm"() {
    const answer = await api("POST", "/api/v1/mfa/totp/confirm", { code: $("totp-code").value });
    $("totp-code").value = "";
    $("totp-enrol").hidden = true;
    $("backup-codes").textContent = answer.backup_codes.join(" ");
    $("backup-codes-box").hidden = false;
    await loadAccount();
    show("MFA is on. Keep the backup codes.");
  },
  async "passkey-register"() {
    const begun = await api("POST", "/api/v1/passkeys/register/options", await proof("passkey.register"));
    const made = await navigator.credentials.create({ publicKey: creationOptions(begun.options) });
    const name = $("passkey-name").value;
    await api("POST", "/api/v1/passkeys/register", { credential: made.toJSON(), name });
    await loadAccount();
    show("Passkey added: " + name);
  },
  async "apikey-create"() {
    const body = { name: $("apikey-name").value, scope: $("apikey-scope").value };
    const created = await api("POST", "/api/v1/api-keys", { ...body, ...(await proof("apikey.create")) });
    $("apikey").textContent = created.key;
    $("apikey-box").hidden = false;
    $("apikey-result").textContent = "";
    await loadAccount();
    show("API key created: " + created.key_id);
  },
  async "apikey-try"() {
    const me = await api("GET", "/api/v1/me", undefined, $("apikey").textContent);
    $("apikey-result").textContent = `answered for ${me.user.email} as ${me.credential.kind}`;
  },
};

async function verifyMfa(answer) {
  $("mfa-code").value = "";
  const body = { mfa_token: state.mfaToken, ...answer, cookie: true };
  await signedIn(await api("POST", "/api/auth/mfa/verify", body));
}

async function run(name, event) {
  if (event) event.preventDefault();
  $("error").textContent = "";
  try {
    await actions[name]();
  } catch (error) {
    fail(error);
  }
}

async function start() {
  await resume();
  document.body.dataset.ready = "true"; // the page is idle: tests wait for this
}

async function resume() {
  for (const name of Object.keys(actions)) {
    const element = $(name);
    element.addEventListener(element.tagName === "FORM" ? "submit" : "click", (e) => run(name, e));
  }
  const params = new URLSearchParams(location.search);
  if (location.pathname === "/confirm-email" && params.get("token")) {
    history.replaceState(null, "", "/demo"); // the token leaves the address bar
    try {
      const answer = await api("POST", "/api/auth/confirm-email", { token: params.get("token") });
      show(`Address confirmed: ${answer.user.email}.`);
    } catch (error) {
      fail(error);
    }
    return;
  }
  // A page reload keeps the session: the refresh cookie buys a new access token.
  try {
    await signedIn(await api("POST", "/api/auth/refresh", {}));
  } catch (error) {
    signedOut("Not signed in.");
  }
}

document.addEventListener("DOMContentLoaded", start);
