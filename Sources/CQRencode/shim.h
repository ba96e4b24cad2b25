#ifndef MAMORI_CQRENCODE_SHIM_H
#define MAMORI_CQRENCODE_SHIM_H
// libqrencode, as Debian's libqrencode-dev installs it: draws enrolment keys as QR codes.
#include <qrencode.h>
#endif
