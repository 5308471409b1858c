/* hiredis_sds.c — compiles hiredis' sds.c from the vendored copy (FRA_HIREDIS_SRC, an -isystem
 * path so its own warnings stay out of our build) into the extension; empty with a system
 * hiredis.  Owns nothing; no function here needs the GIL. */
#ifndef FRA_HIREDIS_SYSTEM
#include <sds.c>
#endif
