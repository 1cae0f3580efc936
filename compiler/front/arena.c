/* arena.c - one allocation arena per compilation: the AST, the checked model and
 * every string live here and go away together, so no error path can leak. */
#include "aec.h"

#include <stdlib.h>
#include <string.h>

typedef struct chunk { struct chunk *next; size_t used, cap; max_align_t data[]; } chunk;
struct ae_arena { chunk *head; };

ae_arena *ae_arena_new(void) {
  ae_arena *a = calloc(1, sizeof *a);
  if (!a) { fputs("aec: out of memory\n", stderr); abort(); }
  return a;
}

void ae_arena_free(ae_arena *a) {
  if (!a) return;
  for (chunk *c = a->head, *next; c; c = next) { next = c->next; free(c); }
  free(a);
}

void *ae_alloc(ae_arena *a, size_t size) {
  size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  chunk *c = a->head;
  if (!c || c->cap - c->used < size) {
    size_t cap = size > 65536 ? size : 65536;
    c = malloc(sizeof *c + cap);
    if (!c) { fputs("aec: out of memory\n", stderr); abort(); }
    c->used = 0; c->cap = cap; c->next = a->head; a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
}

char *ae_strndup(ae_arena *a, const char *s, size_t n) {
  char *p = ae_alloc(a, n + 1);
  memcpy(p, s, n);
  return p;
}

char *ae_strdup(ae_arena *a, const char *s) { return ae_strndup(a, s, strlen(s)); }

char *ae_sprintf(ae_arena *a, const char *fmt, ...) {
  va_list ap, aq;
  va_start(ap, fmt);
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = ae_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, aq);
  va_end(aq);
  return p;
}

void ae_vec_push(ae_arena *a, ae_vec *v, void *item) {
  if (v->len == v->cap) {
    int cap = v->cap ? v->cap * 2 : 4;
    void **items = ae_alloc(a, sizeof(void *) * (size_t)cap);
    if (v->len) memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
    v->items = items; v->cap = cap;
  }
  v->items[v->len++] = item;
}
