/* npy.c - float32 matrices in numpy's .npy format, version 1.0: magic, a little-endian
 * header length, a Python dict literal padded with spaces to a 64-byte boundary, then
 * the data in C order. Written atomically. */
#include <string.h>
#include "aert_internal.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c writes host floats as <f4: port it for big-endian hosts"
#endif

int aert_npy_write(const char *path, const float *data, long rows, long cols) {
  char dict[128];
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }",
                   rows, cols);
  int total = (10 + n + 1 + 63) / 64 * 64;   /* magic 6, version 2, length 2, dict, '\n' */
  unsigned char head[192];
  memcpy(head, "\x93NUMPY\x01\x00", 8);
  head[8] = (unsigned char)((total - 10) & 255);
  head[9] = (unsigned char)((total - 10) >> 8);
  memset(head + 10, ' ', (size_t)(total - 10));
  memcpy(head + 10, dict, (size_t)n);
  head[total - 1] = '\n';
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  if (aert_write(a.f, head, (size_t)total, a.tmp) != 0 ||
      aert_write(a.f, data, sizeof(float) * rows * cols, a.tmp) != 0) {
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}
