// Package exchange verifies JWTs issued by trusted identity providers, for the
// RFC 8693-style token exchange (docs/logins.md#token-exchange, POST
// /v1/token/exchange): a caller presents a JWT from its identity provider and,
// once this package has verified it, sessiond opens a session for the user it
// names.
//
// Verification uses go-jose (github.com/go-jose/go-jose/v4); only asymmetric
// signatures are accepted, with keys read once from local files at start.
// A Verifier is immutable and safe for concurrent use; Verify reads no file.
//
// # The trusted-issuers file
//
// The file is JSON, read strictly: an unknown field, a wrong type or trailing
// data is an error, and an error about an issuer names it (by index and
// value) and the field at fault. Load and New fail on any problem, so a
// server refuses to start with a broken file. For example:
//
//	{
//	  "issuers": [
//	    {
//	      "issuer": "https://idp.example.com",
//	      "audiences": ["sessiond"],
//	      "jwks_file": "idp-jwks.json",
//	      "public_keys": ["idp-key.pem"],
//	      "algorithms": ["RS256", "ES256", "EdDSA"],
//	      "leeway": "30s",
//	      "user_id_claim": "sub",
//	      "scope_claim": "scope",
//	      "attribute_claims": {"email": "email", "roles": "roles"}
//	    }
//	  ]
//	}
//
// Fields of each issuer:
//
//   - issuer (required): compared exactly with the token's "iss" claim (a
//     trailing slash matters). Each issuer appears once.
//   - audiences (required, at least one): the token's "aud" (a string or an
//     array) must contain at least one of them.
//   - jwks_file and public_keys: where the issuer's public keys are; at least
//     one usable key is required. jwks_file is a JWK Set (RFC 7517, the
//     document an identity provider publishes at its jwks_uri). public_keys
//     lists PEM files, each holding one or more blocks of type "PUBLIC KEY"
//     (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" (only the
//     certificate's key is used; its dates and chain are not checked).
//     Relative paths are relative to the directory of the trusted-issuers
//     file. Private keys and symmetric ("oct") keys are refused; RSA keys must
//     have at least 2048 bits. JWKS keys marked "use": "enc", and keys of
//     types this package does not know (RFC 7517 §5), are skipped.
//   - algorithms (default ["RS256", "ES256", "EdDSA"]): the accepted "alg"
//     values, among RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
//     ES512 and EdDSA. "none" and the HMAC algorithms (HS256, HS384, HS512)
//     are configuration errors: a token is only ever checked against the
//     issuer's public keys.
//   - leeway (default "30s", at most "5m"): a Go duration, the clock skew
//     allowed when checking "exp", "nbf" and "iat".
//   - user_id_claim (default "sub"): the claim naming the user; it must be a
//     non-empty string.
//   - scope_claim (default "scope"): the claim holding the granted scopes,
//     either a space-separated string or an array of strings. Scopes are
//     returned sorted and without duplicates; a missing claim means none.
//   - attribute_claims (optional): attribute name → claim name. A string
//     claim is copied as it is; a number, boolean, array or object is copied
//     as its compact JSON text; a missing or null claim is left out.
//
// # Keys and "kid"
//
// A token whose header has a "kid" is checked only against the issuer's JWKS
// keys with that kid; an unknown kid is rejected (PEM keys carry no kid and
// are never used for such a token: put the key into jwks_file with its kid
// instead). A token without "kid" is tried against every key of its issuer,
// PEM and JWKS alike, that fits its "alg". A JWKS key that names an "alg" is
// used only for that algorithm.
//
// # What Verify rejects
//
// Every rejection wraps ErrInvalidToken, and its text says why (for debug
// logs) but never contains the token. Verify rejects a token larger than
// MaxTokenSize (before parsing it), anything but a compact JWS, an "alg" the
// token's issuer does not accept, a "crit" or "b64" header, an "iss" that is
// not configured, a "kid" the issuer has no key for, a bad signature, a
// missing "exp", an "exp" in the past or an "nbf" or "iat" in the future
// (each beyond the issuer's leeway), an "aud" without any of the issuer's
// audiences, a missing, empty or non-string user-id claim, and a malformed
// scope claim. The issuer is picked by the unverified "iss" claim; the token
// is then verified with that issuer's keys and algorithms only.
package exchange
