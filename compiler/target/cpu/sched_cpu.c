/* sched_cpu.c - the CPU target's schedule: how each convolution runs and the working
 * memory that needs. Decided once here, after fusion and autodiff; the memory planner
 * places what it asks for, and the C emitter, the report and dump read the same answer.
 *
 *   1x1, stride 1, one plain source   one GEMM straight on the input (no scratch)
 *   3x3, stride 1, every view a 2x    the four phases of the large image as one 2x2
 *   nearest upsample                  conv of the small image (aert_conv_fwd), "up2";
 *                                     with 16 channels as Winograd F(2x2, 2x2)
 *   output channels in whole half     direct register-tiled kernels on a padded copy
 *   vectors (or narrow: see below)    of a few images (aert_conv_fwd), "slide"; a 3x3
 *                                     window at stride 1 as Winograd F(2x2, 3x3); dx at
 *                                     a stride above 1 by phases (aert_conv_dx_phases)
 *   anything else                     im2col + GEMM over a few images at a time        */
#include "aec.h"

#include <string.h>

/* The most images, dividing the batch, whose buffer of per_image floats stays near 4 MiB:
 * larger chunks measured slower (the packed panels no longer stay in cache). */
static int images_per_chunk(int batch, long per_image) {
  int chunk = 1;
  for (int c = 1; c <= batch; c++)
    if (batch % c == 0 && per_image * c <= (1L << 20)) chunk = c;
  return chunk;
}

/* The channels a conv's views stack with the given upsampling factor, and how many views. */
static long stacked(const ae_kernel *k, int factor, int *views) {
  long c = 0;
  *views = 0;
  for (int j = 0; j < k->src.len; j++) {
    const ae_view *v = k->src.items[j];
    if (v->factor == factor) c += v->node->shape.d[v->node->shape.rank - 1], ++*views;
  }
  return c;
}

/* Winograd F(2x2, 3x3) pays where both channel counts reach 16: with 8 its transforms cost
 * about what its 16 products save (a small U-Net's 8-channel layers ran 1.5-2.9x slower,
 * 16 -> 16 as fast, 16 -> 32 and up 1.2-2x faster than direct on a 2-core AMD EPYC). The
 * runtime narrows it per build (aert_wino_pays: AVX2 from 32 channels, the weight gradient
 * of its 2x2 phases from 128), running the direct kernels on the same buffers otherwise. */
#define AE_WINO_MIN_CHANNELS 16
/* Its blocks live on each thread's stack (aert_wino_fwd: 16 positions of a run of at least
 * 12 blocks, both channel counts: 1.5 MiB in float at 2048 channels together); more channels
 * than that run direct (a mutant spec with 65537 input channels overflowed a thread's stack). */
#define AE_WINO_MAX_CHANNELS 2048
static bool wino_fits(long cin, long cout) {
  return cin >= AE_WINO_MIN_CHANNELS && cout >= AE_WINO_MIN_CHANNELS && cin + cout <= AE_WINO_MAX_CHANNELS;
}
/* Its weight gradient (aert_conv_wino_dw) only from 64: its products sum over the blocks of a
 * run both threads share, and below 64 channels the direct weight gradient (near peak)
 * wins (32 -> 64 1.1x, 64 -> 64 1.3x, 64 -> 128 and up 1.5-1.7x on the same host). */
#define AE_WINO_DW_MIN_CHANNELS 64
static bool wino_dw_fits(long cin, long cout) { return cin >= AE_WINO_DW_MIN_CHANNELS && cout >= AE_WINO_DW_MIN_CHANNELS; }

/* The offset of `floats` placed at a buffer's end, which moves past them when they are used. */
static long append(long *end, bool used, long floats) {
  long at = *end;
  *end += used ? floats : 0;
  return at;
}

/* A 3x3 'same' window at stride 1 over 2x nearest upsamples (conv_ae's decoder) runs as the
 * phases of the small image; beside them plain views (the U-Net's skips) run as a direct
 * conv of their own at full size, their outputs added. The phases' 4 * cout outputs and
 * both parts' input channels (dx) must be whole half vectors (AE_SLIDE_UNIT), and cout too
 * when there is a plain part. */
static bool up2_fits(const ae_kernel *k) {
  const ae_node *n = k->node;
  if (k->kind != K_CONV || n->k != 3 || n->stride != 1 || !n->pad_same) return false;
  int nu, np;
  long cu = stacked(k, 2, &nu), cp = stacked(k, 1, &np);
  if (nu + np != k->src.len || cu == 0) return false;
  return 4 * n->units % AE_SLIDE_UNIT == 0 && cu % AE_SLIDE_UNIT == 0 && cp % AE_SLIDE_UNIT == 0 &&
         (cp == 0 || n->units % AE_SLIDE_UNIT == 0);
}

/* The scratch of the phases, for images of h x w small pixels (the upsampled views' size):
 * forward [padded input | slack | phase weights | phase outputs z];
 * backward [padded input | slack | dy by phase s | slack | flipped phase weights |
 * the phases' weight gradient | dx of the stack]. With plain views, both buffers go on at
 * the same offset (mix_at): [upsampled views' weights (backward: their gradient) | plain
 * views padded | slack | their weights | those Winograd-transformed], backward then [padded
 * dy | slack | flipped plain weights | plain weight gradient | dx of the plain stack |
 * the flipped weights transformed | Winograd's weight-gradient products]. */
static void schedule_up2(const ae_program *p, ae_kernel *k) {
  ae_conv_sched *c = &k->conv;
  const ae_node *n = k->node, *x = n->in.items[0];
  int nu, np;
  long H = x->shape.d[0], W = x->shape.d[1], h = H / 2, w = W / 2, co = n->units, co4 = 4 * co;
  long cu = stacked(k, 2, &nu), cp = stacked(k, 1, &np);
  long xpad = (h + 2) * (w + 2) * cu, z = (h + 1) * (w + 1) * co4, weights = 4 * cu * co4;
  long dstack = nu > 1 ? h * w * cu : 0, xpp = (H + 2) * (W + 2) * cp, dyp = cp ? (H + 2) * (W + 2) * co : 0;
  long dsp = np > 1 ? H * W * cp : 0;
  c->algo = CONV_UP2;
  c->col_floats = 0;
  c->wino = c->dwino = c->wdw = false;   /* the slide schedule's choice, not this one's */
  c->pchunk = images_per_chunk(p->batch, xpad + z + dstack + xpp + dyp + dsp);
  long C = c->pchunk;
  c->weights_at = C * xpad + AE_SLIDE_SLACK * cu;
  c->z_at = c->weights_at + weights;
  c->s_at = c->weights_at;
  c->flip_at = c->s_at + C * z + AE_SLIDE_SLACK * co4;
  c->dw2_at = c->flip_at + weights;
  c->dstack_at = c->dw2_at + weights;
  c->mix_at = c->dstack_at + C * dstack;
  c->pad_floats = cp ? c->mix_at : c->z_at + C * z;
  c->dpad_floats = c->mix_at;
  if (cp) {
    c->xp_at = c->mix_at + 9 * cu * co;
    c->wp_at = c->xp_at + C * xpp + AE_SLIDE_SLACK * cp;
    c->pad_floats = c->wp_at + 9 * cp * co;
    c->dyp_at = c->pad_floats;
    c->wfp_at = c->dyp_at + C * dyp + AE_SLIDE_SLACK * co;
    c->dwp_at = c->wfp_at + 9 * cp * co;
    c->dsp_at = c->dwp_at + 9 * cp * co;
    c->dpad_floats = c->dsp_at + C * dsp;
    /* the plain views' 3x3 conv at full size (even) as Winograd F(2x2, 3x3): its
     * transformed weights, forward and flipped for dx, at the end of each buffer */
    c->wino = c->dwino = wino_fits(cp, co);
    c->wdw = c->wino && wino_dw_fits(cp, co);
    c->wino_at = append(&c->pad_floats, c->wino, 16 * cp * co);
    c->dwino_at = append(&c->dpad_floats, c->wino, 16 * cp * co);
    c->wdw_at = append(&c->dpad_floats, c->wdw, 16 * cp * co);
  }
  /* the phases (a 2x2 conv of cu to 4 x co channels) as Winograd F(2x2, 2x2): their
   * transformed weights at the end of the forward buffer, the flipped ones' and the weight
   * gradient's products at the end of the backward one */
  c->pwino = wino_fits(cu, co4);
  c->pwdw = c->pwino && wino_dw_fits(cu, co4);
  c->pwino_at = append(&c->pad_floats, c->pwino, 9 * cu * co4);
  c->pdwino_at = append(&c->dpad_floats, c->pwino, 9 * cu * co4);
  c->pwdw_at = append(&c->dpad_floats, c->pwdw, 9 * cu * co4);
  c->scratch_floats[0] = c->pad_floats;
  c->scratch_floats[1] = p->needs_grad[p->root[k->out->id]->id] ? c->dpad_floats : 0;
}

bool ae_slide_dx_direct(int tc, int k, int s) {
  int taps = (k + s - 1) / s;   /* per phase and dimension: aert_conv_dx_phases keeps 64 taps, 64 phases */
  return tc % AE_SLIDE_UNIT == 0 && s <= 8 && taps * taps <= 64;
}

int ae_dx_phase_span(int k, int s, int pad, int in, int out) {
  int d = (k - 1) / s, span = out + d;
  for (int q = 0; q < s; q++) {
    int need = (in - q + s - 1) / s + (q + pad) / s + d;   /* phase q's rows and its offset */
    span = need > span ? need : span;
  }
  return span;
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
  /* A window with whole half vectors of output channels, or fewer output channels than a
   * vector over whole vectors of input channels (narrow), runs direct on a padded copy of
   * its input (split into phases for a stride above 1); the slack lets the last register
   * tile read past the last image. */
  bool narrow = n->units % AE_SLIDE_UNIT && n->units < AE_SLIDE_LANES && x->shape.d[2] % AE_SLIDE_LANES == 0;
  c->algo = gemm_1x1 ? CONV_GEMM_1X1 : conv && (n->units % AE_SLIDE_UNIT == 0 || narrow) ? CONV_SLIDE : CONV_IM2COL;
  if (gemm_1x1) c->col_floats = 0;
  if (c->algo == CONV_SLIDE) {
    int kk = n->k, s = n->stride, tc = x->shape.d[2], co = n->units, hi = x->shape.d[0], wi = x->shape.d[1];
    long slack = (long)AE_SLIDE_SLACK * (tc > co ? tc : co);
    long hg = ((n->shape.d[0] - 1) * s + kk + s - 1) / s, wg = ((n->shape.d[1] - 1) * s + kk + s - 1) / s;
    long fwd = (long)s * s * hg * wg * tc, weights = (long)kk * kk * tc * co;
    int pad = n->pad_same ? (kk - 1) / 2 : 0, ho = n->shape.d[0], wo = n->shape.d[1];
    long dpad = s == 1 ? (long)(hi + kk - 1) * (wi + kk - 1) * co
                       : (long)ae_dx_phase_span(kk, s, pad, hi, ho) * ae_dx_phase_span(kk, s, pad, wi, wo) * co;
    long dstack = k->src.len > 1 || v0->factor > 1 ? (long)hi * wi * tc : 0;   /* dx of the stacked views */
    long back = dpad + dstack;
    c->pchunk = images_per_chunk(p->batch, fwd > back ? fwd : back);
    /* forward: [padded input | slack | narrow: the weights gathered by output channel]
     * backward: [padded dy | slack | flipped weights (by phase) | dx of the stack] */
    c->weights_at = c->pchunk * fwd + slack;
    c->pad_floats = c->weights_at + (narrow ? weights : 0);
    c->flip_at = c->pchunk * dpad + slack;
    c->dstack_at = c->flip_at + weights;
    c->dpad_floats = c->dstack_at + c->pchunk * dstack;
    /* A 3x3 window at stride 1 with even output sizes (and 16 channels) runs as Winograd F(2x2, 3x3)
     * (aert_conv_wino: 16 multiply-adds per channel pair for 4 pixels, not 36) on the same
     * padded copy, its transformed weights behind it; dx likewise, by the flipped weights,
     * when it runs direct and the input is even too; dw with 64 channels and more. */
    long twino = 16L * tc * co;
    c->wino = !narrow && kk == 3 && s == 1 && n->shape.d[0] % 2 == 0 && n->shape.d[1] % 2 == 0 && wino_fits(tc, co);
    c->dwino = c->wino && tc % AE_SLIDE_UNIT == 0 && hi % 2 == 0 && wi % 2 == 0;
    c->wdw = c->wino && wino_dw_fits(tc, co);
    const char *act = k->act ? ae_op_info_of(k->act->op)->act_enum : NULL;
    c->store_act = !narrow && !c->wino && k->b && (!act || !strcmp(act, "AERT_ACT_RELU") || !strcmp(act, "AERT_ACT_LINEAR"));
    c->in_place = narrow && s == 1 && k->src.len == 1 && v0->factor == 1;
    c->wdw_at = c->weights_at;   /* free while the weight gradient runs: the forward's transformed weights */
    c->wino_at = append(&c->pad_floats, c->wino, twino);
    c->dwino_at = append(&c->dpad_floats, c->dwino, twino);
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
    long d = ae_slide_dx_direct(x->shape.d[2], n->k, n->stride) ? c->dpad_floats : c->col_floats;
    b = d > b ? d : b;
  }
  c->scratch_floats[0] = f;
  c->scratch_floats[1] = p->needs_grad[p->root[k->out->id]->id] ? b : 0;
}

/* A dense layer that carries dx back transposes its weights into its backward scratch. */
static void schedule_dense(const ae_program *p, ae_kernel *k) {
  const ae_node *x = ((ae_view *)k->src.items[0])->node;
  if (p->needs_grad[p->root[x->id]->id]) k->conv.scratch_floats[1] = ae_shape_elems(x->shape) * k->node->units;
}

void ae_schedule_cpu(ae_program *p) {
  for (int i = 0; i < p->kernels.len; i++) {
    ae_kernel *k = p->kernels.items[i];
    if (k->kind == K_CONV || k->kind == K_CONV_T) schedule_conv(p, k);
    if (up2_fits(k)) schedule_up2(p, k);
    if (k->kind == K_DENSE) schedule_dense(p, k);
  }
}
