/* fuzz_file.c - libFuzzer harness for the runtime's file readers: the bytes are written
 * to a file and read as an IDX data file (FUZZ_IDX) or as a checkpoint (FUZZ_CKPT),
 * exactly as the trainer reads them. Reader errors are expected; crashes are not. */
#include "aert_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *scratch_path(void) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/aec_fuzz_%d.bin", (int)getpid());
  return path;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  const char *path = scratch_path();
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
#ifdef FUZZ_IDX
  aert_idx idx;
  if (aert_idx_read(path, &idx) == 0) free(idx.data);
#else
  aert_ckpt ck;
  if (aert_ckpt_load(path, &ck) == 0) {
    for (int i = 0; i < ck.n; i++) (void)aert_ckpt_find(&ck, ck.t[i].name);
    aert_ckpt_free(&ck);
  }
#endif
  return 0;
}
