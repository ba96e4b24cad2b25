#ifndef MAMORI_CARGON2_SHIM_H
#define MAMORI_CARGON2_SHIM_H
// The reference Argon2 implementation, as Debian's libargon2-dev installs it.
#include <argon2.h>

// argon2.h defines its flags as macro expressions, which Swift cannot import; these constants
// carry the same values.
static const uint32_t mamori_argon2_flag_clear_password = ARGON2_FLAG_CLEAR_PASSWORD;
static const uint32_t mamori_argon2_flag_clear_secret = ARGON2_FLAG_CLEAR_SECRET;
#endif
