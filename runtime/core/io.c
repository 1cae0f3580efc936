/* io.c - checked I/O for the runtime: every failure prints one line naming the file and
 * the problem. Atomic writes go to path.tmp, are synced, then renamed over path, so an
 * older file of the same name survives any crash before the rename. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "aert_internal.h"

void aert_error(const char *fmt, ...) {
  va_list ap;
  char line[2048];   /* one write, so that lines of several data threads do not interleave */
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "aec: %s\n", line);
}

void *aert_alloc(size_t n, const char *what) {
  void *p = calloc(1, n ? n : 1);
  if (!p)
    aert_error("out of memory allocating %zu bytes for %s", n, what);
  return p;
}

void *aert_alloc_aligned(size_t n, const char *what) {
  size_t bytes = (n + 63) / 64 * 64;
  void *p = aligned_alloc(64, bytes ? bytes : 64);
  if (!p)
    aert_error("out of memory allocating %zu bytes for %s", n, what);
  else
    memset(p, 0, bytes ? bytes : 64);
  return p;
}

char *aert_join(const char *dir, const char *name) {
  if (name[0] == '/' || !dir || !dir[0])
    return strdup(name);
  size_t n = strlen(dir) + strlen(name) + 2;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
  return s;
}

FILE *aert_open(const char *path, const char *mode) {
  FILE *f = fopen(path, mode);
  if (!f)
    aert_error("cannot %s '%s': %s", mode[0] == 'r' ? "read" : "write", path, strerror(errno));
  return f;
}

int aert_read(FILE *f, void *buf, size_t n, const char *path) {
  if (fread(buf, 1, n, f) == n)
    return 0;
  if (ferror(f))
    aert_error("cannot read '%s': %s", path, strerror(errno));
  else
    aert_error("cannot read '%s': file is truncated", path);
  return -1;
}

int aert_write(FILE *f, const void *buf, size_t n, const char *path) {
  if (fwrite(buf, 1, n, f) == n)
    return 0;
  aert_error("cannot write '%s': %s", path, strerror(errno));
  return -1;
}

int aert_close(FILE *f, const char *path) {
  if (fclose(f) == 0)
    return 0;
  aert_error("cannot write '%s': %s", path, strerror(errno));
  return -1;
}

int aert_read_file(const char *path, unsigned char **buf, size_t *n) {
  FILE *f = aert_open(path, "rb");
  if (!f)
    return -1;
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    aert_error("cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    return -1;
  }
  *n = (size_t)st.st_size;
  *buf = aert_alloc(*n + 1, path);   /* zero-filled: the text ends in a NUL past its n bytes */
  if (!*buf || aert_read(f, *buf, *n, path) != 0) {
    free(*buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  return 0;
}

int aert_is_folder(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int aert_mkdir_p(const char *path) {
  char *p = strdup(path);
  if (!p)
    return aert_error("out of memory"), -1;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      aert_error("cannot create folder '%s': %s", p, strerror(errno));
      free(p);
      return -1;
    }
    *s = c;
    if (c == '\0')
      break;
  }
  free(p);
  return 0;
}

int aert_atomic_open(aert_atomic *a, const char *path) {
  a->path = strdup(path);
  a->tmp = malloc(strlen(path) + 5);
  a->f = NULL;
  if (!a->path || !a->tmp) {
    aert_error("out of memory");
    aert_atomic_abort(a);
    return -1;
  }
  sprintf(a->tmp, "%s.tmp", path);
  a->f = aert_open(a->tmp, "wb");
  if (!a->f) {
    aert_atomic_abort(a);
    return -1;
  }
  return 0;
}

/* Makes the rename itself durable. */
static int sync_dir(const char *path) {
  char *copy = strdup(path);
  if (!copy)
    return aert_error("out of memory"), -1;
  const char *dir = dirname(copy);
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
  if (rc)
    aert_error("cannot sync folder '%s': %s", dir, strerror(errno));
  if (fd >= 0)
    close(fd);
  free(copy);
  return rc;
}

int aert_atomic_commit(aert_atomic *a) {
  int rc = -1;
  if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
    aert_error("cannot write '%s': %s", a->tmp, strerror(errno));
    aert_atomic_abort(a);
    return -1;
  }
  FILE *f = a->f;
  a->f = NULL;
  if (aert_close(f, a->tmp) != 0) {
    aert_atomic_abort(a);
    return -1;
  }
  if (rename(a->tmp, a->path) != 0)
    aert_error("cannot rename '%s' to '%s': %s", a->tmp, a->path, strerror(errno));
  else
    rc = sync_dir(a->path);
  if (rc)
    unlink(a->tmp);
  free(a->path);
  free(a->tmp);
  a->path = a->tmp = NULL;
  return rc;
}

void aert_atomic_abort(aert_atomic *a) {
  if (a->f) {
    fclose(a->f);
    unlink(a->tmp);
  }
  free(a->path);
  free(a->tmp);
  a->f = NULL;
  a->path = a->tmp = NULL;
}

int aert_write_file_atomic(const char *path, const void *buf, size_t n) {
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  if (aert_write(a.f, buf, n, a.tmp) != 0) {
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}

void aert_buf_put(aert_buf *b, const void *src, size_t n) {
  if (b->failed)
    return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n)
      cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
      b->failed = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

/* Protobuf's wire format, for the ONNX and TensorBoard writers: a base-128 varint, and a
 * length-delimited field (wire type 2). */
void aert_pb_varint(aert_buf *b, uint64_t v) {
  unsigned char s[10];
  int n = 0;
  do {
    s[n++] = (unsigned char)((v & 127) | (v > 127 ? 128 : 0));
    v >>= 7;
  } while (v);
  aert_buf_put(b, s, (size_t)n);
}

void aert_pb_bytes(aert_buf *b, int field, const void *data, size_t n) {
  aert_pb_varint(b, (uint64_t)field << 3 | 2);
  aert_pb_varint(b, n);
  aert_buf_put(b, data, n);
}
