/* json.c - a small JSON reader for the files `aec report` reads back (a trainer's
 * profile, an earlier build's manifest). A syntax error is reported like a spec error,
 * file:line:col with the line and a caret, so a garbled file names its own spot. */
#include "aec.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  ae_arena *a;
  ae_diag *d;
  const ae_source *src;
  size_t pos;
  int line, col, depth;
  bool failed;
} reader;

static ae_loc here(const reader *r) { return (ae_loc){r->src, r->line, r->col, 1}; }

static int peek(const reader *r) { return r->pos < r->src->len ? (unsigned char)r->src->text[r->pos] : -1; }

static void advance(reader *r) {
  if (r->src->text[r->pos] == '\n') { r->line++; r->col = 1; }
  else r->col++;
  r->pos++;
}

static void skip_space(reader *r) {
  for (int c = peek(r); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(r)) advance(r);
}

static ae_json *fail(reader *r, const char *what) {
  if (!r->failed) {
    int c = peek(r);
    if (c < 0) ae_error(r->d, here(r), "%s, but the file ends here", what);
    else ae_error(r->d, here(r), "%s, found '%c'", what, c >= 32 && c < 127 ? c : '?');
  }
  r->failed = true;
  return NULL;
}

static ae_json *node(reader *r, ae_json_kind kind, ae_loc loc) {
  ae_json *j = ae_alloc(r->a, sizeof *j);
  j->kind = kind;
  j->loc = loc;
  return j;
}

static bool literal(reader *r, const char *word) {
  size_t n = strlen(word);
  if (r->src->len - r->pos < n || strncmp(r->src->text + r->pos, word, n) != 0) return false;
  for (size_t i = 0; i < n; i++) advance(r);
  return true;
}

static const char *read_string(reader *r) {
  advance(r);   /* the opening quote */
  size_t cap = 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    int c = peek(r);
    if (c < 0 || c == '\n') { free(buf); fail(r, "a string is not closed"); return NULL; }
    advance(r);
    if (c == '"') break;
    if (c == '\\') {
      int e = peek(r);
      if (e < 0) { free(buf); fail(r, "a string is not closed"); return NULL; }
      advance(r);
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *at = strchr(from, e);
      if (e == 'u') {   /* the report never needs more than ASCII: anything else becomes '?' */
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
          int h = peek(r);
          if (h < 0 || !strchr("0123456789abcdefABCDEF", h)) { free(buf); fail(r, "expected four hex digits after \\u"); return NULL; }
          v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
          advance(r);
        }
        c = v < 128 ? (int)v : '?';
      } else if (at && e) c = to[at - from];
      else { free(buf); fail(r, "unknown escape in a string"); return NULL; }
    }
    if (n + 2 > cap) buf = realloc(buf, cap *= 2);
    buf[n++] = (char)c;
  }
  char *s = ae_strndup(r->a, buf, n);
  free(buf);
  return s;
}

static ae_json *read_value(reader *r);

static ae_json *read_list(reader *r, bool object) {
  ae_json *j = node(r, object ? JSON_OBJ : JSON_ARR, here(r));
  int close = object ? '}' : ']';
  advance(r);
  skip_space(r);
  if (peek(r) == close) { advance(r); return j; }
  for (;;) {
    skip_space(r);
    if (object) {
      if (peek(r) != '"') return fail(r, "expected a key in quotes");
      const char *key = read_string(r);
      if (!key) return NULL;
      skip_space(r);
      if (peek(r) != ':') return fail(r, "expected ':' after a key");
      advance(r);
      ae_vec_push(r->a, &j->keys, (void *)key);
    }
    ae_json *v = read_value(r);
    if (!v) return NULL;
    ae_vec_push(r->a, &j->items, v);
    skip_space(r);
    if (peek(r) == ',') { advance(r); continue; }
    if (peek(r) == close) { advance(r); return j; }
    return fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static ae_json *read_number(reader *r) {
  ae_json *j = node(r, JSON_NUM, here(r));
  const char *start = r->src->text + r->pos;
  char *end;
  j->num = strtod(start, &end);
  if (end == start) return fail(r, "expected a value");
  while (r->src->text + r->pos < end) advance(r);
  return j;
}

static ae_json *read_value(reader *r) {
  skip_space(r);
  if (++r->depth > AE_MAX_NESTING) return fail(r, "values nested too deep");
  ae_json *j = NULL;
  ae_loc at = here(r);
  int c = peek(r);
  if (c == '{' || c == '[') j = read_list(r, c == '{');
  else if (c == '"') {
    const char *s = read_string(r);
    if (s) { j = node(r, JSON_STR, at); j->str = s; }
  } else if (literal(r, "true")) { j = node(r, JSON_BOOL, at); j->b = true; }
  else if (literal(r, "false")) j = node(r, JSON_BOOL, at);
  else if (literal(r, "null")) j = node(r, JSON_NULL, at);
  else if (c == '-' || (c >= '0' && c <= '9')) j = read_number(r);
  else j = fail(r, "expected a value");
  r->depth--;
  return j;
}

ae_json *ae_json_parse(ae_arena *a, ae_diag *d, const ae_source *src) {
  reader r = {a, d, src, 0, 1, 1, 0, false};
  ae_json *j = read_value(&r);
  skip_space(&r);
  if (j && peek(&r) >= 0) j = fail(&r, "expected the end of the file after the value");
  return j;
}

const ae_json *ae_json_get(const ae_json *obj, const char *key) {
  if (!obj || obj->kind != JSON_OBJ) return NULL;
  for (int i = 0; i < obj->keys.len; i++)
    if (!strcmp(obj->keys.items[i], key)) return obj->items.items[i];
  return NULL;
}

double ae_json_num(const ae_json *obj, const char *key, double deflt) {
  const ae_json *v = ae_json_get(obj, key);
  return v && v->kind == JSON_NUM ? v->num : deflt;
}

const char *ae_json_str(const ae_json *obj, const char *key) {
  const ae_json *v = ae_json_get(obj, key);
  return v && v->kind == JSON_STR ? v->str : NULL;
}

/* The JSON file at path (a profile, a manifest), parsed into a; errors go to d, naming it. */
bool ae_report_read_json(ae_arena *a, ae_diag *d, const char *path, const ae_json **out) {
  ae_source *src = ae_alloc(a, sizeof *src);
  if (!ae_source_read(a, d, path, src, NULL)) return false;
  *out = ae_json_parse(a, d, src);
  return *out != NULL;
}
