/* llhttp_api.c — compiles Debian's llhttp source api.c (node-llhttp; folder from FRA_LLHTTP_SRC,
 * on the include path) into the extension.  Owns nothing; no function here needs the GIL. */
#include "api.c"
