// A local OpenID Connect provider shaped like NHS CIS2 Authentication, for tests and the demo only.
//
// panva's oidc-provider (an OpenID-certified provider) does the protocol: the code flow with state, nonce and PKCE,
// signed ID tokens, the userinfo endpoint. This script only configures it: CIS2's endpoint paths under the issuer,
// CIS2's scopes and claims (uid, nhsid_nrbac_roles, selected_roleid), one confidential client, and the provider's
// own sign-in page (a password per account) followed by a role choice when an account holds several roles, as CIS2
// asks after authentication.
//
// Environment: OIDC_PROVIDER_CONFIG names a JSON file {"client": {client_id, client_secret, redirect_uris},
// "accounts": [{login, password, uid, given_name, family_name, roles: [{person_roleid, person_orgid, org_code,
// role_code, role_name}]}]}; OIDC_PROVIDER_ADDRESS_FILE is where the issuer URL is written once it listens (on
// 127.0.0.1 only, on OIDC_PROVIDER_PORT or a free port when that is 0 or unset).
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const config = JSON.parse(readFileSync(process.env.OIDC_PROVIDER_CONFIG, 'utf8'));
const accountsByLogin = new Map(config.accounts.map((account) => [account.login, account]));
const accountsByUid = new Map(config.accounts.map((account) => [account.uid, account]));
// Which account signed in at which interaction, between the password and the role choice; kept here, never in the
// browser, so the role form cannot name somebody else.
const signedIn = new Map();

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><p>NHS Care Identity Service (local test provider)</p><h1>${escape(title)}</h1>${body}</main></body></html>`;
}

function loginPage(uid, message = '') {
  const error = message ? `<p role="alert">${escape(message)}</p>` : '';
  return page('Sign in', `${error}<form method="post" action="/interaction/${escape(uid)}/login">
<p><label for="login">Username</label> <input id="login" name="login" autocomplete="username" required></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p></form>`);
}

function rolePage(uid, account) {
  const choices = account.roles.map((role, index) => `<p><input type="radio" name="role" id="role-${index}"
 value="${escape(role.person_roleid)}" ${index === 0 ? 'checked' : ''}> <label for="role-${index}">${escape(role.role_name)}
 at ${escape(role.org_code)} (${escape(role.person_roleid)})</label></p>`).join('');
  return page('Select your role', `<form method="post" action="/interaction/${escape(uid)}/role">
<fieldset><legend>Which role are you working in?</legend>${choices}</fieldset>
<p><button type="submit">Continue</button></p></form>`);
}

function passwordMatches(account, password) {
  const given = Buffer.from(String(password));
  const kept = Buffer.from(String(account.password));
  return given.length === kept.length && timingSafeEqual(given, kept);
}

async function formOf(ctx) {
  let body = '';
  for await (const chunk of ctx.req) {
    body += chunk;
    if (body.length > 10000) ctx.throw(413);
  }
  return Object.fromEntries(new URLSearchParams(body));
}

// The account id carries the role chosen at sign-in, so the tokens issued for that sign-in name it.
function accountIdOf(account, roleId) {
  return `${account.uid}:${roleId}`;
}

async function finish(provider, ctx, account, roleId) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const accountId = accountIdOf(account, roleId);
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  signedIn.delete(details.uid);
  const returnTo = await provider.interactionResult(
    ctx.req,
    ctx.res,
    { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
  ctx.status = 303;
  ctx.redirect(returnTo);
}

async function interactions(provider, ctx, next) {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|role))?$/);
  if (!match) return next();
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const [, uid, step] = match;
  if (uid !== details.uid) ctx.throw(400);
  if (ctx.method === 'GET' && !step) {
    ctx.body = loginPage(uid);
    return undefined;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  const fields = await formOf(ctx);
  if (step === 'login') {
    const account = accountsByLogin.get(fields.login);
    if (!account || !passwordMatches(account, fields.password)) {
      ctx.status = 401;
      ctx.body = loginPage(uid, 'The username or password is not right.');
      return undefined;
    }
    if (account.roles.length > 1) {
      signedIn.set(uid, account.login);
      ctx.body = rolePage(uid, account);
      return undefined;
    }
    return finish(provider, ctx, account, account.roles.length ? account.roles[0].person_roleid : '');
  }
  const account = accountsByLogin.get(signedIn.get(uid));
  if (!account) ctx.throw(400);
  const role = account.roles.find((held) => held.person_roleid === fields.role);
  if (!role) {
    ctx.body = rolePage(uid, account);
    ctx.status = 400;
    return undefined;
  }
  return finish(provider, ctx, account, role.person_roleid);
}

function providerFor(issuer) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alg = config.client.id_token_signed_response_alg || 'RS512';
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg };
  const provider = new Provider(issuer, {
    clients: [{
      ...config.client,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: alg,
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'RS512'] },
    scopes: ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'uid'],
      nationalrbacaccess: ['nhsid_nrbac_roles'],
      selectedrole: ['selected_roleid'],
    },
    // CIS2 puts every claim of the scopes asked for in the ID token too (selected_roleid above all).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => false },
    routes: {
      authorization: '/authorize',
      token: '/access_token',
      userinfo: '/userinfo',
      jwks: '/connect/jwk_uri',
    },
    async findAccount(ctx, id) {
      const separator = id.lastIndexOf(':');
      const account = accountsByUid.get(id.slice(0, separator));
      if (!account) return undefined;
      const roleId = id.slice(separator + 1);
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            uid: account.uid,
            name: `${account.given_name} ${account.family_name}`,
            given_name: account.given_name,
            family_name: account.family_name,
            nhsid_nrbac_roles: account.roles,
            ...(roleId ? { selected_roleid: roleId } : {}),
          };
        },
      };
    },
  });
  provider.use((ctx, next) => interactions(provider, ctx, next));
  return provider;
}

const server = createServer();
server.listen(Number(process.env.OIDC_PROVIDER_PORT || 0), HOST, () => {
  const issuer = `http://${HOST}:${server.address().port}`;
  server.on('request', providerFor(issuer).callback());
  const addressFile = process.env.OIDC_PROVIDER_ADDRESS_FILE;
  if (addressFile) {
    // Written whole, then renamed: a reader never sees half an address.
    writeFileSync(`${addressFile}.partial`, issuer);
    renameSync(`${addressFile}.partial`, addressFile);
  }
  console.log(`local OIDC provider listening at ${issuer}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    // Browsers keep connections open; they must not hold the stop up.
    server.closeAllConnections();
  });
}
