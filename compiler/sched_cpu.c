/* sched_cpu.c - the CPU target's schedule: how each convolution runs and the working
 * memory that needs. Decided once here, after fusion and autodiff; the memory planner
 * places what it asks for, and the C emitter, the report and dump read the same answer.
 *
 *   1x1, stride 1, one plain source   one GEMM straight on the input (no scratch)
 *   3x3, stride 1, every view a 2x    the four phases of the large image as one 2x2
 *   nearest upsample                  conv of the small image (aert_conv_fwd), "up2"
 *   whole vectors of output channels  direct register-tiled kernels on a padded copy
 *   (or narrow: see below)            of a few images (aert_conv_fwd), "slide"
 *   anything else                     im2col + GEMM over a few images at a time        */
#include "aec.h"

/* The most images, dividing the batch, whose buffer of per_image floats stays near 4 MiB:
 * larger chunks measured slower (the packed panels no longer stay in cache). */
static int images_per_chunk(int batch, long per_image) {
  int chunk = 1;
  for (int c = 1; c <= batch; c++)
    if (batch % c == 0 && per_image * c <= (1L << 20)) chunk = c;
  return chunk;
}

/* A 3x3 'same' window at stride 1 whose every view is a 2x nearest upsample (conv_ae's
 * decoder) runs as phases of the small image; a concat of an upsample with a plain skip
 * (the U-Net's up path) does not. The phases' 4 * cout outputs and the input channels
 * (dx) must be whole vectors. */
static bool up2_fits(const ae_kernel *k) {
  const ae_node *n = k->node, *x = n->in.items[0];
  if (k->kind != K_CONV || n->k != 3 || n->stride != 1 || !n->pad_same) return false;
  for (int j = 0; j < k->src.len; j++)
    if (((ae_view *)k->src.items[j])->factor != 2) return false;
  return 4 * n->units % AE_SLIDE_LANES == 0 && x->shape.d[2] % AE_SLIDE_LANES == 0;
}

/* The scratch of the phases, for images of h x w small pixels (the views' size):
 * forward [padded input | slack | phase weights | phase outputs z];
 * backward [padded input | slack | dy by phase s | slack | flipped phase weights |
 * the phases' weight gradient | dx of the stack]. */
static void schedule_up2(const ae_program *p, ae_kernel *k) {
  ae_conv_sched *c = &k->conv;
  const ae_node *n = k->node, *x = n->in.items[0];
  long h = x->shape.d[0] / 2, w = x->shape.d[1] / 2, tc = x->shape.d[2], co4 = 4L * n->units;
  long xpad = (h + 2) * (w + 2) * tc, z = (h + 1) * (w + 1) * co4, weights = 4 * tc * co4;
  long dstack = k->src.len > 1 ? h * w * tc : 0;
  c->algo = CONV_UP2;
  c->pchunk = images_per_chunk(p->batch, xpad + z + dstack);
  c->weights_at = c->pchunk * xpad + AE_SLIDE_SLACK * tc;
  c->z_at = c->weights_at + weights;
  c->pad_floats = c->z_at + c->pchunk * z;
  c->s_at = c->weights_at;
  c->flip_at = c->s_at + c->pchunk * z + AE_SLIDE_SLACK * co4;
  c->dw2_at = c->flip_at + weights;
  c->dstack_at = c->dw2_at + weights;
  c->dpad_floats = c->dstack_at + c->pchunk * dstack;
  c->scratch_floats[0] = c->pad_floats;
  c->scratch_floats[1] = p->needs_grad[p->root[k->out->id]->id] ? c->dpad_floats : 0;
}

static void schedule_conv(const ae_program *p, ae_kernel *k) {
  const ae_node *n = k->node, *x = n->in.items[0];
  ae_conv_sched *c = &k->conv;
  bool conv = k->kind == K_CONV;
  long rows = conv ? (long)n->shape.d[0] * n->shape.d[1] : (long)x->shape.d[0] * x->shape.d[1];
  long cols = conv ? (long)n->k * n->k * x->shape.d[2] : (long)n->k * n->k * n->units;
  c->chunk = images_per_chunk(p->batch, rows * cols);
  c->col_floats = rows * cols * c->chunk;
  const ae_view *v0 = k->src.items[0];
  bool gemm_1x1 = conv && n->k == 1 && n->stride == 1 && k->src.len == 1 && v0->factor == 1;
  /* A window with whole vectors of output channels, or fewer output channels than a vector
   * over whole vectors of input channels (narrow), runs direct on a padded copy of its input
   * (split into phases for a stride above 1); the slack lets the last register tile read
   * past the last image. */
  bool narrow = n->units < AE_SLIDE_LANES && x->shape.d[2] % AE_SLIDE_LANES == 0;
  c->algo = gemm_1x1 ? CONV_GEMM_1X1 : conv && (n->units % AE_SLIDE_LANES == 0 || narrow) ? CONV_SLIDE : CONV_IM2COL;
  if (gemm_1x1) c->col_floats = 0;
  if (c->algo == CONV_SLIDE) {
    int kk = n->k, s = n->stride, tc = x->shape.d[2], co = n->units, hi = x->shape.d[0], wi = x->shape.d[1];
    long slack = (long)AE_SLIDE_SLACK * (tc > co ? tc : co);
    long hg = ((n->shape.d[0] - 1) * s + kk + s - 1) / s, wg = ((n->shape.d[1] - 1) * s + kk + s - 1) / s;
    long fwd = (long)s * s * hg * wg * tc, dpad = (long)(hi + kk - 1) * (wi + kk - 1) * co, weights = (long)kk * kk * tc * co;
    long dstack = k->src.len > 1 || v0->factor > 1 ? (long)hi * wi * tc : 0;   /* dx of the stacked views */
    c->pchunk = images_per_chunk(p->batch, fwd > dpad + dstack ? fwd : dpad + dstack);
    /* forward: [padded input | slack | narrow: the weights gathered by output channel]
     * backward: [padded dy | slack | flipped weights | dx of the stack] */
    c->weights_at = c->pchunk * fwd + slack;
    c->pad_floats = c->weights_at + (narrow ? weights : 0);
    c->flip_at = c->pchunk * dpad + slack;
    c->dstack_at = c->flip_at + weights;
    c->dpad_floats = c->dstack_at + c->pchunk * dstack;
  }
  /* The working buffers, each alive only while the conv runs: forward, the padded copy
   * (direct) or the columns of one chunk (im2col); backward, the padded copy again for the
   * weight gradient, then in the same place what carries dx back: padded dy with the
   * flipped weights (direct, stride 1, whole vectors of input channels) or the columns;
   * im2col holds the columns of the weight gradient and those of dx side by side. */
  bool slide = c->algo == CONV_SLIDE, dx = false;
  for (int j = 0; j < k->src.len; j++) dx = dx || p->needs_grad[p->root[((ae_view *)k->src.items[j])->node->id]->id];
  long f = slide ? c->pad_floats : c->col_floats, b = slide ? c->pad_floats : 2 * c->col_floats;
  if (slide && dx) {
    long d = x->shape.d[2] % AE_SLIDE_LANES || n->stride > 1 ? c->col_floats : c->dpad_floats;
    b = d > b ? d : b;
  }
  c->scratch_floats[0] = f;
  c->scratch_floats[1] = p->needs_grad[p->root[k->out->id]->id] ? b : 0;
}

void ae_schedule_cpu(ae_program *p) {
  for (int i = 0; i < p->kernels.len; i++) {
    ae_kernel *k = p->kernels.items[i];
    if (k->kind == K_CONV || k->kind == K_CONV_T) schedule_conv(p, k);
    if (up2_fits(k)) schedule_up2(p, k);
  }
}
