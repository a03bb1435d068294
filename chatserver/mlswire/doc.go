// Package mlswire decodes the parts of MLS (RFC 9420) wire messages that
// Parley's server acts on as the delivery service: KeyPackages (checked and
// their signatures verified before they are handed out), the clear header of
// PublicMessage and PrivateMessage (group, epoch, content type: what commit
// ordering needs) and the recipients of a Welcome (KeyPackage references,
// so Welcomes are routed without trusting the committer's word).
//
// It is written from the RFC, independently of the web client's MLS library
// (ts-mls), and is tested against the MLS working group's interoperability
// test vectors (testdata/mlswg) and against messages the client library
// produced (testdata/tsmls): the two implementations agreeing on the same
// bytes is the project's check that the framing is the standard's.
//
// It never decrypts: the server holds no MLS private key. Only ciphersuite 1
// (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519) is accepted.
package mlswire
