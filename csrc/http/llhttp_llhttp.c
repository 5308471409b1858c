/* llhttp_llhttp.c — compiles Debian's llhttp source llhttp.c (node-llhttp; folder from FRA_LLHTTP_SRC,
 * on the include path) into the extension.  Owns nothing; no function here needs the GIL. */
#include "llhttp.c"
