/* npz.c - numpy's .npz: a zip archive with one .npy per array (np.savez writes it stored,
 * np.savez_compressed deflated). Written stored, with CRC-32s; read from the central
 * directory (zip64 sizes included), stored or deflated entries, every CRC checked. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "aert_internal.h"

static void le(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t rd(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* ---- writing: local header + .npy per tensor, then the central directory ------------- */
typedef struct {
  char name[300];
  uint32_t crc, size, offset;
} member_t;

static int write_member(aert_atomic *a, const aert_named *t, member_t *mb, uint32_t *offset) {
  unsigned char head[AERT_NPY_HEADER_MAX], local[30] = {0};
  size_t hn = aert_npy_header(head, t->rank, t->shape), bytes = 4 * (size_t)t->size;
  if (hn + bytes > 0xfffffff0u - *offset)
    return aert_error("'%s': the arrays pass 4 GiB, more than a zip without zip64 holds",
                      a->path), -1;
  snprintf(mb->name, sizeof mb->name, "%s.npy", t->name);
  mb->crc = (uint32_t)crc32_z(crc32_z(0, head, hn), (const unsigned char *)t->data, bytes);
  mb->size = (uint32_t)(hn + bytes);
  mb->offset = *offset;
  le(local, 0x04034b50, 4);
  le(local + 4, 20, 2);                 /* version needed 2.0 */
  le(local + 12, 0x21, 2);              /* 1980-01-01 */
  le(local + 14, mb->crc, 4);
  le(local + 18, mb->size, 4);
  le(local + 22, mb->size, 4);
  le(local + 26, strlen(mb->name), 2);
  *offset += 30 + (uint32_t)strlen(mb->name) + mb->size;
  if (aert_write(a->f, local, 30, a->tmp) || aert_write(a->f, mb->name, strlen(mb->name), a->tmp) ||
      aert_write(a->f, head, hn, a->tmp) || aert_write(a->f, t->data, bytes, a->tmp))
    return -1;
  return 0;
}

static int write_directory(aert_atomic *a, const member_t *mb, int n, uint32_t offset) {
  uint32_t size = 0;
  for (int i = 0; i < n; i++) {
    unsigned char c[46] = {0};
    le(c, 0x02014b50, 4);
    le(c + 4, 20, 2), le(c + 6, 20, 2);
    le(c + 14, 0x21, 2);
    le(c + 16, mb[i].crc, 4);
    le(c + 20, mb[i].size, 4), le(c + 24, mb[i].size, 4);
    le(c + 28, strlen(mb[i].name), 2);
    le(c + 42, mb[i].offset, 4);
    if (aert_write(a->f, c, 46, a->tmp) || aert_write(a->f, mb[i].name, strlen(mb[i].name), a->tmp))
      return -1;
    size += 46 + (uint32_t)strlen(mb[i].name);
  }
  unsigned char end[22] = {0};
  le(end, 0x06054b50, 4);
  le(end + 8, (uint64_t)n, 2), le(end + 10, (uint64_t)n, 2);
  le(end + 12, size, 4);
  le(end + 16, offset, 4);
  return aert_write(a->f, end, 22, a->tmp);
}

int aert_npz_write(const char *path, const aert_tensor_set *s) {
  if (s->n > 65535)
    return aert_error("'%s': %d arrays, more than a zip without zip64 holds", path, s->n), -1;
  member_t *mb = aert_alloc(sizeof *mb * (size_t)(s->n ? s->n : 1), "zip directory");
  aert_atomic a;
  if (!mb || aert_atomic_open(&a, path) != 0)
    return free(mb), -1;
  uint32_t offset = 0;
  int rc = 0;
  for (int i = 0; i < s->n && rc == 0; i++)
    rc = write_member(&a, &s->t[i], &mb[i], &offset);
  if (rc == 0)
    rc = write_directory(&a, mb, s->n, offset);
  free(mb);
  if (rc == 0)
    return aert_atomic_commit(&a);
  aert_atomic_abort(&a);
  return -1;
}

/* ---- reading ----------------------------------------------------------------------------- */
/* The central directory entry at p (n bytes left): name, method, sizes, CRC, data offset. */
typedef struct {
  char name[300];
  int method;
  uint32_t crc;
  uint64_t csize, usize, local;
  size_t entry_bytes;
} zentry_t;

static int parse_central(const unsigned char *p, size_t n, zentry_t *e) {
  if (n < 46 || rd(p, 4) != 0x02014b50)
    return -1;
  size_t nl = rd(p + 28, 2), xl = rd(p + 30, 2), cl = rd(p + 32, 2);
  if (46 + nl + xl + cl > n)
    return -1;
  e->method = (int)rd(p + 10, 2);
  e->crc = (uint32_t)rd(p + 16, 4);
  e->csize = rd(p + 20, 4), e->usize = rd(p + 24, 4), e->local = rd(p + 42, 4);
  snprintf(e->name, sizeof e->name, "%.*s", (int)nl, (const char *)p + 46);
  for (const unsigned char *x = p + 46 + nl, *xe = x + xl; x + 4 <= xe;) {   /* zip64 sizes */
    size_t id = rd(x, 2), len = rd(x + 2, 2);
    const unsigned char *v = x + 4;
    if (id == 1) {
      if (e->usize == 0xffffffffu && v + 8 <= xe) e->usize = rd(v, 8), v += 8;
      if (e->csize == 0xffffffffu && v + 8 <= xe) e->csize = rd(v, 8), v += 8;
      if (e->local == 0xffffffffu && v + 8 <= xe) e->local = rd(v, 8);
    }
    x += 4 + len;
  }
  e->entry_bytes = 46 + nl + xl + cl;
  return 0;
}

/* The entry's bytes, inflated when deflated; CRC checked. */
static unsigned char *member_bytes(const char *path, const unsigned char *b, size_t n,
                                   const zentry_t *e) {
  if (e->local > n || n - e->local < 30 || rd(b + e->local, 4) != 0x04034b50)
    return aert_error("'%s' is damaged: the entry of '%s' is not where the directory says",
                      path, e->name), NULL;
  uint64_t start = e->local + 30 + rd(b + e->local + 26, 2) + rd(b + e->local + 28, 2);
  if (start > n || e->csize > n - start)
    return aert_error("'%s' is truncated: '%s' runs past the end of the file", path, e->name), NULL;
  if (e->method != 0 && e->method != 8)
    return aert_error("'%s': '%s' is compressed with zip method %d; aec reads stored and "
                      "deflated entries (np.savez, np.savez_compressed)", path, e->name, e->method), NULL;
  unsigned char *out = malloc(e->usize ? e->usize : 1);
  if (!out)
    return aert_error("out of memory reading '%s'", path), NULL;
  int ok = 1;
  if (e->method == 0) {
    ok = e->csize == e->usize;
    if (ok)
      memcpy(out, b + start, e->usize);
  } else {
    z_stream z = {0};
    ok = inflateInit2(&z, -15) == Z_OK;
    z.next_in = (unsigned char *)b + start, z.avail_in = (uInt)e->csize;
    z.next_out = out, z.avail_out = (uInt)e->usize;
    ok = ok && inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == e->usize;
    inflateEnd(&z);
  }
  if (!ok || (uint32_t)crc32_z(0, out, e->usize) != e->crc) {
    free(out);
    return aert_error("'%s' is corrupted: '%s' does not %s", path, e->name,
                      ok ? "match its CRC-32" : "decompress to its stated size"), NULL;
  }
  return out;
}

static int read_member(const char *path, const unsigned char *b, size_t n, const zentry_t *e,
                       aert_tensor_set *s) {
  size_t nl = strlen(e->name);
  if (nl < 5 || strcmp(e->name + nl - 4, ".npy") != 0)
    return aert_error("'%s' holds '%s', which is not a .npy array", path, e->name), -1;
  unsigned char *bytes = member_bytes(path, b, n, e);
  if (!bytes)
    return -1;
  char what[700], name[300];
  snprintf(what, sizeof what, "'%s' in '%s'", e->name, path);
  snprintf(name, sizeof name, "%.*s", (int)(nl - 4), e->name);
  aert_named t = {0};
  int rc = aert_npy_parse(what, bytes, e->usize, &t);
  free(bytes);
  if (rc == 0)
    rc = aert_tensor_set_add(s, name, t.rank, t.shape, t.data);
  free(t.data);
  return rc;
}

int aert_npz_read(const char *path, const unsigned char *b, size_t n, aert_tensor_set *s) {
  memset(s, 0, sizeof *s);
  if (n < 22 || rd(b, 4) != 0x04034b50)
    return aert_error("'%s' is not an npz file (no zip signature)", path), -1;
  size_t end = n - 22, stop = n > 22 + 65535 ? n - 22 - 65535 : 0;
  while (end > stop && rd(b + end, 4) != 0x06054b50)
    end--;
  if (rd(b + end, 4) != 0x06054b50)
    return aert_error("'%s' is truncated: the zip's central directory is missing", path), -1;
  size_t count = rd(b + end + 10, 2), at = rd(b + end + 16, 4), size = rd(b + end + 12, 4);
  if (at > end || size > end - at)
    return aert_error("'%s' is truncated or damaged: its central directory is out of range", path), -1;
  for (size_t i = 0; i < count; i++) {
    zentry_t e;
    if (parse_central(b + at, end - at, &e) != 0) {
      aert_tensor_set_free(s);
      return aert_error("'%s' is damaged: zip directory entry %zu does not parse", path, i + 1), -1;
    }
    if (read_member(path, b, n, &e, s) != 0) {
      aert_tensor_set_free(s);
      return -1;
    }
    at += e.entry_bytes;
  }
  return 0;
}
