/* emit_common.c - what every target's emitter writes the same way: the provenance comment
 * above each kernel (its spec line through the block calls, shapes, FLOPs and bytes), and
 * the names of the GEMM precisions and libraries. */
#include "aec.h"

#include <string.h>

const char *const ae_precision_names[3] = {"fp32", "tf32", "bf16"};
const char *const ae_gemm_names[2] = {"kernels", "cublaslt"};

static void human(double x, char *buf) {
  const char *unit[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (x >= 1000 && u < 4) { x /= 1000; u++; }
  sprintf(buf, u ? "%.2f %s" : "%.0f %s", x, unit[u]);
}

/* Where a layer comes from: its call, through the block calls that expanded into it,
 * outermost first; the file is named once, then again only where it changes:
 * "specs/unet_landcover.ae:22 up() -> :9 double_conv() -> :8:12 conv". */
static const char *call_chain(ae_arena *a, const ae_node *n) {
  const char *chain = "", *file = NULL;
  for (int j = 0; j <= n->n_via; j++) {
    const ae_loc *l = j < n->n_via ? &n->via[j].loc : &n->loc;
    const char *path = l->src->path, *at = file && !strcmp(file, path) ? "" : path;
    chain = j < n->n_via ? ae_sprintf(a, "%s%s:%d %s() -> ", chain, at, l->line, n->via[j].block)
                         : ae_sprintf(a, "%s%s:%d:%d %s", chain, at, l->line, l->col, ae_op_name(n->op));
    file = path;
  }
  return n->n_via ? chain : ae_sprintf(a, "%s:%d:%d", n->loc.src->path, n->loc.line, n->loc.col);
}

/* The comment above each kernel: its spec line, shapes, FLOPs and bytes. */
void ae_emit_provenance(FILE *o, ae_arena *a, const ae_program *p, const ae_kernel *k) {
  const ae_node *n = k->node;
  char in[256] = "", sh[48], fl[32], by[32];
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    size_t l = strlen(in);
    snprintf(in + l, sizeof in - l, "%s%s %s", i ? " ++ " : "", v->node->name ? v->node->name : ae_op_name(v->node->op),
             ae_shape_str(v->node->shape, sh));
    if (v->factor > 1) { l = strlen(in); snprintf(in + l, sizeof in - l, " upsampled x%d", v->factor); }
  }
  ae_cost c = ae_kernel_cost(p, k);
  char bfl[32], bby[32];
  human(c.flops[0], fl);
  human(c.bytes[0], by);
  human(c.flops[1], bfl);
  human(c.bytes[1], bby);
  fprintf(o, "\n/* ---- %s%s%s  (%s)\n", ae_op_name(n->op), n->name ? " " : "", n->name ? n->name : "", call_chain(a, n));
  fprintf(o, " * in: %s\n * out: %s %s", in, k->out->name ? k->out->name : "", ae_shape_str(k->out->shape, sh));
  if (k->act) fprintf(o, ", %s fused", ae_op_name(k->act->op));
  fprintf(o, ", batch %d\n * forward %sFLOP, %sB moved per batch", p->batch, fl, by);
  if (ae_kernel_has_backward(p, k)) fprintf(o, "; backward %sFLOP, %sB", bfl, bby);
  fprintf(o, " */\n");
}
