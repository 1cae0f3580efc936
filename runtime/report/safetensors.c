/* safetensors.c - Hugging Face's safetensors files: a little-endian u64 header length, a JSON
 * header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}} padded with
 * spaces, then the raw little-endian data. A small JSON reader of just that header. */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies host floats as F32: port it for big-endian hosts"
#endif

/* ---- writing ------------------------------------------------------------------------ */
static int append(char **s, size_t *n, size_t *cap, const char *fmt, const char *a, long x) {
  char piece[600];
  int k = a ? snprintf(piece, sizeof piece, fmt, a) : snprintf(piece, sizeof piece, fmt, x);
  if (*n + (size_t)k + 8 > *cap) {
    size_t c = *cap ? *cap * 2 + (size_t)k : 4096;
    char *q = realloc(*s, c);
    if (!q)
      return -1;
    *s = q, *cap = c;
  }
  memcpy(*s + *n, piece, (size_t)k);
  *n += (size_t)k;
  return 0;
}

static char *header_json(const aert_tensor_set *s, const char *model, size_t *len) {
  char *h = NULL;
  size_t n = 0, cap = 0;
  long off = 0;
  int bad = append(&h, &n, &cap, "{\"__metadata__\":{\"format\":\"pt\",\"aec_model\":\"%s\"", model, 0);
  if (s->layout)
    bad |= append(&h, &n, &cap, ",\"aec_layout\":\"%s\"", s->layout, 0);
  bad |= append(&h, &n, &cap, "}", "", 0);
  for (int i = 0; i < s->n && !bad; i++) {
    const aert_named *t = &s->t[i];
    bad |= append(&h, &n, &cap, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name, 0);
    for (int d = 0; d < t->rank; d++)
      bad |= append(&h, &n, &cap, d ? ",%ld" : "%ld", NULL, t->shape[d]);
    bad |= append(&h, &n, &cap, "],\"data_offsets\":[%ld,", NULL, off);
    off += 4 * t->size;
    bad |= append(&h, &n, &cap, "%ld]}", NULL, off);
  }
  bad |= append(&h, &n, &cap, "}", "", 0);
  while (!bad && (8 + n) % 8)   /* the data starts 8-byte aligned */
    bad |= append(&h, &n, &cap, " ", "", 0);
  if (bad) {
    free(h);
    return NULL;
  }
  *len = n;
  return h;
}

int aert_safetensors_write(const char *path, const aert_tensor_set *s, const char *model) {
  size_t n;
  char *h = header_json(s, model, &n);
  if (!h)
    return aert_error("out of memory writing '%s'", path), -1;
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)n >> (8 * i));
  aert_atomic a;
  int rc = aert_atomic_open(&a, path);
  if (rc == 0)
    rc = aert_write(a.f, len, 8, a.tmp) || aert_write(a.f, h, n, a.tmp) ? -1 : 0;
  for (int i = 0; rc == 0 && i < s->n; i++)
    rc = aert_write(a.f, s->t[i].data, 4 * (size_t)s->t[i].size, a.tmp);
  free(h);
  if (rc == 0)
    return aert_atomic_commit(&a);
  if (a.f)
    aert_atomic_abort(&a);
  return -1;
}

/* ---- reading: a cursor over the JSON header ---------------------------------------------- */
typedef struct {
  const char *p, *end;
  int bad;
} json_t;

static void ws(json_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
    j->p++;
}

static int eat(json_t *j, char c) {
  ws(j);
  if (j->p < j->end && *j->p == c)
    return j->p++, 1;
  return 0;
}

static void expect(json_t *j, char c) {
  if (!eat(j, c))
    j->bad = 1;
}

/* A string into out (escapes other than \" and \\ kept as written). */
static void string(json_t *j, char *out, size_t n) {
  size_t k = 0;
  expect(j, '"');
  while (!j->bad && j->p < j->end && *j->p != '"') {
    if (*j->p == '\\' && j->p + 1 < j->end && (j->p[1] == '"' || j->p[1] == '\\'))
      j->p++;
    if (k + 1 < n)
      out[k++] = *j->p;
    j->p++;
  }
  if (j->p >= j->end)
    j->bad = 1;
  j->p++;
  if (n)
    out[k] = '\0';
}

static long integer(json_t *j) {
  ws(j);
  char *end;
  long v = j->p < j->end ? strtol(j->p, &end, 10) : 0;
  if (j->p >= j->end || end == j->p || end > j->end)
    j->bad = 1;
  else
    j->p = end;
  return v;
}

static void skip_value(json_t *j, int depth) {
  char s[8];
  ws(j);
  if (j->bad || j->p >= j->end || depth > 32) {
    j->bad = 1;
  } else if (*j->p == '"') {
    string(j, s, 0);
  } else if (*j->p == '{' || *j->p == '[') {
    char close = *j->p == '{' ? '}' : ']';
    j->p++;
    if (eat(j, close))
      return;
    do {
      if (close == '}') {
        string(j, s, 0);
        expect(j, ':');
      }
      skip_value(j, depth + 1);
    } while (!j->bad && eat(j, ','));
    expect(j, close);
  } else {
    while (j->p < j->end && !strchr(",}] \n\t\r", *j->p))
      j->p++;
  }
}

static void metadata(json_t *j, aert_tensor_set *s) {
  char key[128], val[128];
  expect(j, '{');
  if (eat(j, '}'))
    return;
  do {
    string(j, key, sizeof key);
    expect(j, ':');
    ws(j);
    if (j->p < j->end && *j->p == '"') {
      string(j, val, sizeof val);
      if (!strcmp(key, "aec_layout") && !s->layout)
        s->layout = strdup(val);
    } else {
      skip_value(j, 1);
    }
  } while (!j->bad && eat(j, ','));
  expect(j, '}');
}

typedef struct {
  char dtype[16];
  int rank;
  long shape[AERT_FILE_MAX_RANK];
  long begin, end;
} entry_t;

static void entry(json_t *j, entry_t *e) {
  char key[64];
  e->begin = e->end = -1;
  e->rank = -1;
  expect(j, '{');
  do {
    string(j, key, sizeof key);
    expect(j, ':');
    if (!strcmp(key, "dtype")) {
      string(j, e->dtype, sizeof e->dtype);
    } else if (!strcmp(key, "shape")) {
      expect(j, '[');
      e->rank = 0;
      if (!eat(j, ']')) {
        do {
          long v = integer(j);
          if (e->rank == AERT_FILE_MAX_RANK || v < 0)
            j->bad = 1;
          else
            e->shape[e->rank++] = v;
        } while (!j->bad && eat(j, ','));
        expect(j, ']');
      }
    } else if (!strcmp(key, "data_offsets")) {
      expect(j, '[');
      e->begin = integer(j);
      expect(j, ',');
      e->end = integer(j);
      expect(j, ']');
    } else {
      skip_value(j, 1);
    }
  } while (!j->bad && eat(j, ','));
  expect(j, '}');
}

static int take_entry(const char *path, const char *name, const entry_t *e,
                      const unsigned char *data, size_t n, aert_tensor_set *s) {
  if (e->rank < 0 || e->begin < 0 || !e->dtype[0])
    return aert_error("'%s' is damaged: tensor '%s' lacks its dtype, shape or data_offsets",
                      path, name), -1;
  if (strcmp(e->dtype, "F32") != 0)
    return aert_error("'%s': tensor '%s' is %s; aec reads F32 only (in PyTorch: "
                      "{k: v.float() for k, v in state_dict.items()})", path, name, e->dtype), -1;
  long size = 1;
  for (int i = 0; i < e->rank; i++)
    size *= e->shape[i];
  if (e->end < e->begin || (size_t)e->end > n)
    return aert_error("'%s' is truncated: tensor '%s' ends at byte %ld of the data, which has %zu",
                      path, name, e->end, n), -1;
  if (e->end - e->begin != 4 * size)
    return aert_error("'%s' is damaged: tensor '%s' has %ld values but %ld bytes", path, name,
                      size, e->end - e->begin), -1;
  if (aert_tensor_set_add(s, name, e->rank, e->shape, NULL) != 0)
    return -1;
  memcpy(s->t[s->n - 1].data, data + e->begin, (size_t)(4 * size));
  return 0;
}

int aert_safetensors_read(const char *path, const unsigned char *b, size_t n, aert_tensor_set *s) {
  memset(s, 0, sizeof *s);
  uint64_t hl = 0;
  for (int i = 0; n >= 8 && i < 8; i++)
    hl |= (uint64_t)b[i] << (8 * i);
  if (n < 10 || hl < 2 || hl > n - 8 || b[8] != '{')
    return aert_error("'%s' is not a safetensors file%s", path,
                      n >= 10 && b[8] == '{' ? " (truncated: shorter than its header)" : ""), -1;
  json_t j = {(const char *)b + 8, (const char *)b + 8 + hl, 0};
  const unsigned char *data = b + 8 + hl;
  char name[256];
  expect(&j, '{');
  if (!eat(&j, '}')) {
    do {
      string(&j, name, sizeof name);
      expect(&j, ':');
      if (j.bad)
        break;
      if (!strcmp(name, "__metadata__")) {
        metadata(&j, s);
        continue;
      }
      entry_t e;
      entry(&j, &e);
      if (!j.bad && take_entry(path, name, &e, data, n - 8 - hl, s) != 0) {
        aert_tensor_set_free(s);
        return -1;
      }
    } while (!j.bad && eat(&j, ','));
    expect(&j, '}');
  }
  if (j.bad) {
    aert_tensor_set_free(s);
    return aert_error("'%s' is damaged: its safetensors header is not valid JSON near byte %ld",
                      path, (long)(j.p - (const char *)b)), -1;
  }
  return 0;
}
