/* cost.c - what a fused kernel costs: its FLOPs and the bytes it moves, forward and
 * backward, per batch. One place for these facts, read by the comments and tables of the
 * generated code (codegen_c.c), the manifest and the audit report (report.c). */
#include "aec.h"

/* The backward FLOPs of a kernel: its weight gradient and its input gradient steps each as
 * many as the forward pass, for a layer with weights; as many as the forward pass for the
 * rest. */
static double backward_flops(const ae_program *p, const ae_kernel *k) {
  if (!ae_kernel_has_backward(p, k)) return 0;
  double f = k->node->flops * p->batch;
  if (ae_op_info_of(k->node->op)->backward != BACKWARD_LAYER) return f;
  return f * ((ae_kernel_step(p, k, STEP_WEIGHT_GRAD) ? 1 : 0) + (ae_kernel_step(p, k, STEP_INPUT_GRAD) ? 1 : 0));
}

/* Bytes are the least traffic: every tensor a pass reads or writes, once. Forward reads
 * the sources (before any folded upsample) and the parameters and writes the output;
 * backward reads dy, the output and the sources, writes the sources' gradients that
 * exist, reads the weights and writes their gradients unless they are frozen. */
ae_cost ae_kernel_cost(const ae_program *p, const ae_kernel *k) {
  ae_cost c = {{k->node->flops * p->batch, backward_flops(p, k)}, {0, 0}};
  double out = 4.0 * p->batch * (double)ae_shape_elems(k->out->shape), in = 0, din = 0;
  for (int i = 0; i < k->src.len; i++) {
    const ae_node *s = ((ae_view *)k->src.items[i])->node;
    double b = 4.0 * p->batch * (double)ae_shape_elems(s->shape);
    in += b;
    if (ae_value_has_grad(p, s)) din += b;
  }
  double w = k->w ? 4.0 * (double)(k->w->size + (k->b ? k->b->size : 0)) : 0;
  c.bytes[0] = out + in + w;
  if (ae_kernel_has_backward(p, k)) c.bytes[1] = 2 * out + in + din + w * (ae_kernel_step(p, k, STEP_WEIGHT_GRAD) ? 2 : 1);
  return c;
}
