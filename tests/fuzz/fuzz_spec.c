/* fuzz_spec.c - libFuzzer harness for the spec front end: scanner, parser and
 * semantic analysis on arbitrary bytes. Every diagnostic goes to /dev/null; the
 * sanitizers and the fuzzer watch for crashes, leaks, hangs and undefined behaviour. */
#include "aec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  if (size > AE_MAX_FILE_BYTES) return 0;
  ae_arena *a = ae_arena_new();
  ae_source src = { .path = "fuzz.ae", .text = ae_alloc(a, size + 1), .len = size };
  memcpy(src.text, data, size);
  ae_diag d = { .out = sink };
  ae_file *f = ae_parse(a, &d, &src);
  if (d.errors == 0) {
    ae_model *m = ae_check(a, &d, f, 0);
    if (m) ae_lower(a, m, 2);   /* the back end's planning must cope with whatever checks */
  }
  ae_arena_free(a);
  return 0;
}
