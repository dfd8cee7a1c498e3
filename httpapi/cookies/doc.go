// Package cookies makes sessiond's browser cookies (docs/api.md#cookies): the
// session and refresh cookies, their attributes, and the HMAC-SHA256 signature
// on their values.
//
// Keys come from the --cookie-key-file: one key per line, the first signs and
// all verify, so a key is rotated by putting a new one first and removing the
// old one once no cookie signed with it can still be alive. Every node must
// hold the same file.
//
// Cookies are HttpOnly, SameSite=Lax, Path=/, and Secure with the __Host-
// name prefix, except in dev mode (plain HTTP on a loopback address), where a
// browser would drop Secure cookies. Nothing here logs, and no error contains
// key material.
package cookies
