/* llhttp_http.c — compiles Debian's llhttp source http.c (node-llhttp; folder from FRA_LLHTTP_SRC,
 * on the include path) into the extension.  Owns nothing; no function here needs the GIL. */
#include "http.c"
