/* memplan.c - one arena per model with fixed offsets. Time runs over the forward
 * kernels (0..K-1), the loss (K) and the backward kernels in reverse (K+1..2K), as the
 * steps of steps.c carry it; each value and each gradient lives from the first step that
 * touches it to the last, and buffers whose lives do not overlap share memory (largest
 * first, lowest offset). */
#include "aec.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16

static long elems(const ae_program *p, const ae_node *n) { return ae_shape_elems(n->shape) * p->batch; }

static void touch(ae_buffer *b, int t) {
  if (!b->used) { b->used = true; b->first = b->last = t; return; }
  if (t < b->first) b->first = t;
  if (t > b->last) b->last = t;
}

static bool in_arena(const ae_node *n) { return n && n->op != OP_INPUT && n->op != OP_TARGET; }

/* Sizes every buffer, then marks when each is used: at the time of every step that reads
 * or writes it (steps.c), and the output and latent over the whole step, since the
 * runtime reads them after it. */
static void live_ranges(ae_program *p) {
  int K = p->kernels.len, end = 2 * K + 1;
  for (int i = 0; i < K; i++) {
    ae_kernel *k = p->kernels.items[i];
    ae_node *o = k->out;
    p->val[o->id].size = p->grad[o->id].size = elems(p, o);
    for (int j = 0; j < 2; j++) k->scratch[j].size = k->conv.scratch_floats[j];
    if (k->kind == K_BATCHNORM) k->stats.size = 2L * o->shape.d[o->shape.rank - 1];
  }
  for (int i = 0; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i];
    for (int j = 0; j < st->reads.len; j++) touch(st->reads.items[j], st->time);
    for (int j = 0; j < st->writes.len; j++) touch(st->writes.items[j], st->time);
  }
  ae_node *keep[2] = { p->m->output ? p->root[p->m->output->id] : NULL, p->m->latent ? p->root[p->m->latent->id] : NULL };
  for (int j = 0; j < 2; j++)
    if (in_arena(keep[j])) { touch(&p->val[keep[j]->id], 0); touch(&p->val[keep[j]->id], end); }
  int classes = p->m->n_classes;
  p->rowtmp = (ae_buffer){0, classes, 0, end, classes > 0};
}

static int by_size(const void *a, const void *b) {
  const ae_buffer *x = *(ae_buffer *const *)a, *y = *(ae_buffer *const *)b;
  return (x->size < y->size) - (x->size > y->size);
}

static void assign_offsets(ae_program *p) {
  int cap = 2 * p->n_nodes + 3 * p->kernels.len + 1, n = 0;
  ae_buffer **all = calloc((size_t)cap, sizeof *all), **placed = calloc((size_t)cap, sizeof *placed);
  if (!all || !placed) { fputs("aec: out of memory\n", stderr); abort(); }
  for (int i = 0; i < p->n_nodes; i++) {
    if (p->val[i].used) all[n++] = &p->val[i];
    if (p->grad[i].used) all[n++] = &p->grad[i];
  }
  for (int i = 0; i < p->kernels.len; i++) {
    ae_kernel *k = p->kernels.items[i];
    ae_buffer *own[3] = { &k->stats, &k->scratch[0], &k->scratch[1] };
    for (int j = 0; j < 3; j++) if (own[j]->used) all[n++] = own[j];
  }
  if (p->rowtmp.used) all[n++] = &p->rowtmp;
  qsort(all, (size_t)n, sizeof *all, by_size);
  int n_placed = 0;
  p->arena_floats = 0;
  for (int i = 0; i < n; i++) {
    ae_buffer *b = all[i];
    long size = (b->size + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS, off = 0;
    for (bool moved = true; moved;) {       /* lowest offset clear of every overlapping life */
      moved = false;
      for (int j = 0; j < n_placed; j++) {
        ae_buffer *o = placed[j];
        bool overlap_t = b->first <= o->last && o->first <= b->last;
        long osize = (o->size + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        if (overlap_t && off < o->off + osize && o->off < off + size) { off = o->off + osize; moved = true; }
      }
    }
    b->off = off;
    placed[n_placed++] = b;
    if (off + size > p->arena_floats) p->arena_floats = off + size;
  }
  free(all);
  free(placed);
}

void ae_plan_memory(ae_program *p) {
  live_ranges(p);
  assign_offsets(p);
}

/* A value is called by its name in the spec, else by the layer that writes it. */
static const char *buffer_label(const ae_kernel *k, const char *kname) {
  return k->out->name ? k->out->name : k->node->name ? k->node->name : kname;
}

/* Names model.c cannot give a buffer: C's keywords and the fields of its run struct. */
static bool reserved(const char *id) {
  static const char *const words[] = {
    "P", "G", "A", "X", "T", "seed", "training", "auto", "break", "case", "char", "const", "continue", "default",
    "do", "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while",
  };
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strcmp(words[i], id) == 0) return true;
  return false;
}

/* A C identifier from a label, unique among the first m buffers: the kernel's number is
 * appended when the spec's name is taken or reserved. */
static const char *identifier(ae_arena *a, const ae_named_buffer *out, int m, const char *label, int kernel) {
  const char *id = ae_c_name(a, label);
  bool taken = reserved(id);
  for (int i = 0; i < m && !taken; i++) taken = strcmp(out[i].ident, id) == 0;
  return taken ? ae_sprintf(a, "%s_k%d", id, kernel) : id;
}

const ae_named_buffer *ae_plan_buffers(ae_arena *a, const ae_program *p, int *n) {
  ae_named_buffer *out = ae_alloc(a, sizeof *out * (size_t)(5 * p->kernels.len + 1));
  int m = 0;
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    const char *kn = ae_kernel_name(a, k), *label = buffer_label(k, kn);
    const ae_buffer *val = &p->val[k->out->id], *grad = &p->grad[k->out->id];
    if (val->used) {
      out[m] = (ae_named_buffer){ae_sprintf(a, "%s.out", kn), label, identifier(a, out, m, label, k->id), BUF_VALUE, val, k};
      m++;
    }
    if (grad->used) {
      const char *id = identifier(a, out, m, ae_sprintf(a, "d_%s", label), k->id);
      out[m] = (ae_named_buffer){ae_sprintf(a, "%s.dout", kn), ae_sprintf(a, "d%s", label), id, BUF_GRAD, grad, k};
      m++;
    }
    for (int j = 0; j < 2; j++)
      if (k->scratch[j].used) {
        const char *id = identifier(a, out, m, ae_sprintf(a, "%s_%s", kn, j ? "dscratch" : "scratch"), k->id);
        out[m] = (ae_named_buffer){ae_sprintf(a, "%s.scratch_%s", kn, j ? "bwd" : "fwd"),
                                   ae_sprintf(a, "%s scratch %s", kn, j ? "bwd" : "fwd"), id, BUF_SCRATCH, &k->scratch[j], k};
        m++;
      }
    if (k->stats.used) {
      const char *id = identifier(a, out, m, ae_sprintf(a, "%s_stats", kn), k->id);
      out[m] = (ae_named_buffer){ae_sprintf(a, "%s.stats", kn), ae_sprintf(a, "%s stats", kn), id, BUF_STATS, &k->stats, k};
      m++;
    }
  }
  if (p->rowtmp.used) {
    out[m] = (ae_named_buffer){"loss.rows", "loss rows", identifier(a, out, m, "loss_rows", p->kernels.len), BUF_STATS, &p->rowtmp, NULL};
    m++;
  }
  *n = m;
  return out;
}

const char *ae_step_name(ae_arena *a, const ae_program *p, int t) {
  int K = p->kernels.len;
  if (t == K) return "loss";
  if (t > 2 * K) return "after the step: the output and latent kept for the runtime";
  const ae_kernel *k = p->kernels.items[t < K ? t : 2 * K - t];
  return ae_sprintf(a, "%s %s", t < K ? "forward" : "backward", ae_kernel_name(a, k));
}
