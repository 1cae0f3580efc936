/* dump.c - prints each back-end stage as plain text (`aec dump --stage ...`):
 * ir (nodes with shapes), grad (which values get gradients, backward order),
 * fused (kernels with their inputs as read), steps (the program every target walks, with
 * the buffers each step reads and writes), mem (the arena layout, buffers named as in
 * manifest.json and the report). */
#include "aec.h"

#include <string.h>

static const char *node_label(const ae_node *n) { return n->name ? n->name : ae_op_name(n->op); }

static void dump_ir(FILE *out, const ae_program *p) {
  char sh[48];
  for (int i = 0; i < p->m->nodes.len; i++) {
    const ae_node *n = p->m->nodes.items[i];
    fprintf(out, "%%%-3d %-14s %-12s line %-4d", n->id, ae_op_name(n->op), ae_shape_str(n->shape, sh), n->loc.line);
    for (int j = 0; j < n->in.len; j++) fprintf(out, "%s%%%d", j ? ", " : " <- ", ((ae_node *)n->in.items[j])->id);
    if (n->name) fprintf(out, "  (%s)", n->name);
    fputc('\n', out);
  }
  for (int i = 0; i < p->params.len; i++) {
    const ae_tensor *t = p->params.items[i];
    fprintf(out, "param %-20s [", t->name);
    for (int j = 0; j < t->rank; j++) fprintf(out, "%s%d", j ? ", " : "", t->shape[j]);
    fprintf(out, "] at %ld%s\n", t->offset, t->frozen ? " frozen" : "");
  }
}

static void dump_grad(FILE *out, ae_arena *a, const ae_program *p) {
  fputs("values that receive a gradient:", out);
  for (int i = 0; i < p->n_nodes; i++)
    if (p->needs_grad[i] && p->root[i] == p->m->nodes.items[i]) fprintf(out, " d%s", node_label(p->m->nodes.items[i]));
  fputs("\nbackward order:\n  loss\n", out);
  for (int i = p->kernels.len - 1; i >= 0; i--) {
    const ae_kernel *k = p->kernels.items[i];
    fprintf(out, "  %s_backward: d%s ->", ae_kernel_name(a, k), node_label(k->out));
    if (k->w && !k->w->frozen) fprintf(out, " d%s%s%s", k->w->name, k->b ? " d" : "", k->b ? k->b->name : "");
    for (int j = 0; j < k->src.len; j++) {
      const ae_view *v = k->src.items[j];
      if (p->needs_grad[v->node->id]) fprintf(out, " d%s", node_label(v->node));
    }
    fputc('\n', out);
  }
}

static void dump_fused(FILE *out, ae_arena *a, const ae_program *p) {
  char sh[48];
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    fprintf(out, "k%-3d %-22s -> %-12s", k->id, ae_kernel_name(a, k), ae_shape_str(k->out->shape, sh));
    if (k->act) fprintf(out, " +%s", ae_op_name(k->act->op));
    fputs("  reads", out);
    for (int j = 0; j < k->src.len; j++) {
      const ae_view *v = k->src.items[j];
      fprintf(out, " %s", node_label(v->node));
      if (v->factor > 1) fprintf(out, "(up x%d)", v->factor);
      if (k->src.len > 1 && k->kind == K_CONV) fprintf(out, "@ch%d", v->ch_off);
    }
    if (k->conv.algo == CONV_UP2)
      fprintf(out, "  [2x2 phases%s%s, %d images per copy]", k->conv.pwdw ? " winograd + dw" : k->conv.pwino ? " winograd" : "",
              k->conv.wdw ? ", plain views winograd + dw" : k->conv.wino ? ", plain views winograd" : "", k->conv.pchunk);
    else if (k->conv.wino) fprintf(out, "  [winograd%s, %d images per copy]", k->conv.wdw ? " + dw" : "", k->conv.pchunk);
    else if (k->conv.chunk) fprintf(out, "  [%d images per GEMM]", k->conv.chunk);
    fputc('\n', out);
  }
}

/* The plan's buffers, kernel by kernel: the name model.c gives each (r->e1) and the one the
 * manifest and the report use. */
static void dump_mem(FILE *out, ae_arena *a, const ae_program *p) {
  fprintf(out, "arena: %ld floats (%.1f MiB) at batch %d; parameters: %ld floats\n", p->arena_floats,
          p->arena_floats * 4.0 / 1048576, p->batch, p->param_floats);
  fprintf(out, "%-24s %-28s %12s %12s %6s %6s\n", "buffer (model.c)", "plan name", "offset", "floats", "from", "to");
  int n;
  const ae_named_buffer *b = ae_plan_buffers(a, p, &n);
  for (int i = 0; i < n; i++)
    fprintf(out, "%-24s %-28s %12ld %12ld %6d %6d\n", b[i].ident, b[i].name, b[i].b->off, b[i].b->size, b[i].b->first, b[i].b->last);
}

static void buffer_list(FILE *out, const ae_named_buffer *b, int n, const ae_vec *list) {
  for (int i = 0; i < list->len; i++)
    for (int j = 0; j < n; j++)
      if (b[j].b == list->items[i]) fprintf(out, " %s", b[j].ident);
}

/* The steps in order, each with its plan time, its kernel and the buffers (by their names
 * in model.c) it reads and writes; parameters and the batch are not in the arena. */
static void dump_steps(FILE *out, ae_arena *a, const ae_program *p) {
  int n;
  const ae_named_buffer *b = ae_plan_buffers(a, p, &n);
  for (int i = 0; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i];
    fprintf(out, "%4d  t=%-3d %-16s %-22s", i, st->time, ae_step_kind_name(st->kind), st->k ? ae_kernel_name(a, st->k) : "");
    if (st->reads.len) { fputs(" reads", out); buffer_list(out, b, n, &st->reads); }
    if (st->writes.len) { fputs(" writes", out); buffer_list(out, b, n, &st->writes); }
    fputc('\n', out);
  }
}

bool ae_dump(FILE *out, ae_arena *a, const ae_program *p, const char *stage) {
  if (!strcmp(stage, "ir")) dump_ir(out, p);
  else if (!strcmp(stage, "grad")) dump_grad(out, a, p);
  else if (!strcmp(stage, "fused")) dump_fused(out, a, p);
  else if (!strcmp(stage, "steps")) dump_steps(out, a, p);
  else if (!strcmp(stage, "mem")) dump_mem(out, a, p);
  else return false;
  return true;
}
