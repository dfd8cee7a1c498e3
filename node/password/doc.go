// Package password hashes and verifies user passwords with argon2id
// (RFC 9106), stored as PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with the salt and key in unpadded standard base64. Verify reads the
// parameters from the string, so hashes made under older parameters keep
// verifying after DefaultParams change, but it refuses malformed strings and
// parameters outside sane bounds, so that a corrupt or hostile hash cannot
// exhaust a node's memory or CPU.
//
// Each hash costs Params.Memory KiB for its duration; a Hasher bounds how
// many run at once and makes callers wait (on their context) for a slot.
// VerifyNothing does the work of a failed Verify so that a login for an
// unknown user costs what a wrong password costs.
//
// Nothing here logs, and no error ever contains a password, a salt or a key.
package password
