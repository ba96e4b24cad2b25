/* libFuzzer's driver, for fuzz targets that have a main of their own (SwiftPM gives every
 * executable one). Defined by libFuzzer's runtime, which `make fuzz` links with
 * -sanitize=fuzzer; the ordinary build never calls it. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*test_one_input)(const uint8_t *data, size_t size));
