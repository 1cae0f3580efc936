/* npy.c - float32 arrays in numpy's .npy format, version 1.0: magic, a little-endian
 * header length, a Python dict literal padded with spaces to a 64-byte boundary, then
 * the data in C order. Written atomically. */
#include <string.h>
#include "aert_internal.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c writes host floats as <f4: port it for big-endian hosts"
#endif

size_t aert_npy_header(unsigned char head[AERT_NPY_HEADER_MAX], int rank, const long *shape) {
  char dict[AERT_NPY_HEADER_MAX], dims[160] = "";
  size_t k = 0;
  for (int i = 0; i < rank; i++)
    k += (size_t)snprintf(dims + k, sizeof dims - k, "%ld, ", shape[i]);
  if (rank > 0)
    dims[k - (rank > 1 ? 2 : 1)] = '\0';   /* (2, 3) but (5,) */
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                   dims);
  int total = (10 + n + 1 + 63) / 64 * 64;   /* magic 6, version 2, length 2, dict, '\n' */
  memcpy(head, "\x93NUMPY\x01\x00", 8);
  head[8] = (unsigned char)((total - 10) & 255);
  head[9] = (unsigned char)((total - 10) >> 8);
  memset(head + 10, ' ', (size_t)(total - 10));
  memcpy(head + 10, dict, (size_t)n);
  head[total - 1] = '\n';
  return (size_t)total;
}

int aert_npy_write_shaped(const char *path, const float *data, int rank, const long *shape) {
  unsigned char head[AERT_NPY_HEADER_MAX];
  size_t total = aert_npy_header(head, rank, shape), count = 1;
  for (int i = 0; i < rank; i++)
    count *= (size_t)shape[i];
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  if (aert_write(a.f, head, total, a.tmp) != 0 ||
      aert_write(a.f, data, sizeof(float) * count, a.tmp) != 0) {
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}

int aert_npy_write(const char *path, const float *data, long rows, long cols) {
  return aert_npy_write_shaped(path, data, 2, (long[]){rows, cols});
}
