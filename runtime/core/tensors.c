/* tensors.c - a set of named float32 tensors, what the safetensors and npz readers and
 * writers exchange with export and import; and .npy arrays parsed from memory. */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

int aert_tensor_set_add(aert_tensor_set *s, const char *name, int rank, const long *shape,
                        const float *data) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    aert_named *t = realloc(s->t, sizeof *t * (size_t)cap);
    if (!t)
      return aert_error("out of memory for tensor '%s'", name), -1;
    s->t = t, s->cap = cap;
  }
  aert_named *t = &s->t[s->n];
  memset(t, 0, sizeof *t);
  t->rank = rank;
  t->size = 1;
  for (int i = 0; i < rank; i++)
    t->shape[i] = shape[i], t->size *= shape[i];
  t->name = strdup(name);
  t->data = malloc(sizeof(float) * (size_t)(t->size ? t->size : 1));
  if (!t->name || !t->data) {
    free(t->name), free(t->data);
    return aert_error("out of memory for tensor '%s'", name), -1;
  }
  if (data)
    memcpy(t->data, data, sizeof(float) * (size_t)t->size);
  s->n++;
  return 0;
}

const aert_named *aert_tensor_set_find(const aert_tensor_set *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->t[i].name, name))
      return &s->t[i];
  return NULL;
}

void aert_tensor_set_free(aert_tensor_set *s) {
  for (int i = 0; i < s->n; i++)
    free(s->t[i].name), free(s->t[i].data);
  free(s->t);
  free(s->layout);
  memset(s, 0, sizeof *s);
}

/* ---- .npy: magic, version, header length, a dict literal; only '<f4' in C order ------ */
static const char *dict_value(const char *dict, const char *key) {
  const char *k = strstr(dict, key);
  if (!k)
    return NULL;
  k += strlen(key);
  while (*k == ' ' || *k == ':')
    k++;
  return k;
}

static int parse_npy_dict(const char *what, const char *dict, aert_named *t) {
  const char *descr = dict_value(dict, "'descr'"), *order = dict_value(dict, "'fortran_order'"),
             *shape = dict_value(dict, "'shape'");
  if (!descr || !order || !shape || *shape != '(')
    return aert_error("%s is not a numpy array: its header lacks descr, fortran_order or shape",
                      what), -1;
  if (strncmp(descr, "'<f4'", 5) != 0) {
    int n = (int)strcspn(descr + 1, "'");
    return aert_error("%s holds %.*s values; aec reads float32 ('<f4') only: save it with "
                      ".astype(np.float32)", what, n, descr + 1), -1;
  }
  if (strncmp(order, "False", 5) != 0)
    return aert_error("%s is in Fortran order; save it with np.ascontiguousarray", what), -1;
  t->rank = 0;
  t->size = 1;
  for (const char *p = shape + 1; *p != ')';) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || t->rank == AERT_FILE_MAX_RANK)
      return aert_error("%s has a shape aec cannot read (%d dimensions at most)", what,
                        AERT_FILE_MAX_RANK), -1;
    t->shape[t->rank++] = v;
    t->size *= v;
    p = end;
    while (*p == ',' || *p == ' ')
      p++;
  }
  return 0;
}

int aert_npy_parse(const char *what, const unsigned char *b, size_t n, aert_named *t) {
  if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return aert_error("%s is not a .npy array (bad magic)", what), -1;
  size_t hl = b[8] | (size_t)b[9] << 8, start = 10;
  if (b[6] >= 2) {
    if (n < 12)
      return aert_error("%s is truncated", what), -1;
    hl = hl | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    start = 12;
  }
  if (hl > 65536 || start + hl > n)
    return aert_error("%s is truncated inside its header", what), -1;
  char dict[65537];
  memcpy(dict, b + start, hl);
  dict[hl] = '\0';
  if (parse_npy_dict(what, dict, t) != 0)
    return -1;
  size_t bytes = 4 * (size_t)t->size;
  if (n - start - hl != bytes)
    return aert_error("%s is %s: shape %ld values need %zu bytes, it holds %zu", what,
                      n - start - hl < bytes ? "truncated" : "damaged", t->size, bytes,
                      n - start - hl), -1;
  t->data = malloc(bytes ? bytes : 1);
  if (!t->data)
    return aert_error("out of memory reading %s", what), -1;
  memcpy(t->data, b + start + hl, bytes);
  return 0;
}
