/* hiredis_ssl.c — compiles hiredis' ssl.c (rediss://; only when OpenSSL's headers are there)
 * from the vendored copy (FRA_HIREDIS_SRC, an -isystem path so its own warnings stay out of
 * our build) into the extension; empty with a system hiredis.  Owns nothing; no function here
 * needs the GIL. */
#if !defined(FRA_HIREDIS_SYSTEM) && defined(FRA_REDIS_TLS)
#include <ssl.c>
#endif
