// A real OpenID provider for the SSO test: panva's oidc-provider with its development
// login and consent pages, on 127.0.0.1 and a port of the system's choosing. Started by
// tests/tests/oidc.rs with:
//
//   SIGHTLINE_REDIRECT   the collector's https://127.0.0.1:PORT/ui/oidc/callback
//   OIDC_CLIENT_SECRET   the secret of client `sightline`
//
// Prints `issuer http://127.0.0.1:PORT` once it listens, then serves until killed.
// Two accounts (any password): `ada` in sightline-admins, `eve` in no group Sightline maps.
import { createServer } from "node:http";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { Provider } from "oidc-provider";

const accounts = {
  ada: { email: "ada@example.com", groups: ["sightline-admins", "everyone"] },
  eve: { email: "eve@example.com", groups: ["contractors", "everyone"] },
};

// A signing key made for this run: ID tokens are RS256, as most providers sign them.
const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });

const server = createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: "sightline",
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: [process.env.SIGHTLINE_REDIRECT],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    }],
    jwks: { keys: [{ ...jwk, kid: "test-rs256", alg: "RS256", use: "sig" }] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    // `groups` is a scope of its own, as on Okta's org authorization server.
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
    // Scope-requested claims in the ID token itself, where Okta and Entra put groups.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: a.email, email_verified: true, groups: a.groups };
        },
      };
    },
  });
  provider.on("server_error", (ctx, err) => console.error("provider error:", err));
  server.on("request", provider.callback());
  console.log(`issuer ${issuer}`);
});
