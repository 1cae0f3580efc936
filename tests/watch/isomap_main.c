/* isomap_main.c - runs the runtime's Isomap (runtime/report/isomap.c) on n x d float32 points read
 * from a raw file and writes the n x 2 map as raw float32, for isomap_check.py to compare
 * with its numpy reference. Usage: isomap_main IN N D K OUT. Exit 1 on an error. */
#include <stdio.h>
#include <stdlib.h>
#include "aert_internal.h"

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s IN N D K OUT\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]), d = atol(argv[3]);
  int k = atoi(argv[4]);
  unsigned char *buf;
  size_t len;
  if (aert_read_file(argv[1], &buf, &len) != 0)
    return 1;
  if (len != sizeof(float) * n * d) {
    aert_error("'%s' holds %zu bytes, not %ld x %ld floats", argv[1], len, n, d);
    return 1;
  }
  float *out = malloc(sizeof(float) * n * 2);
  double ev[2];
  int rc = out ? aert_isomap((const float *)buf, n, d, k, out, ev) : -1;
  if (rc == 0)
    rc = aert_write_file_atomic(argv[5], out, sizeof(float) * n * 2);
  free(buf);
  free(out);
  return rc == 0 ? 0 : 1;
}
