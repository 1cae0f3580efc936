/* codegen_c.c - writes generated/<model>/: model.c (one function per fused kernel,
 * forward and backward side by side, every size a constant, each preceded by its
 * provenance), model.h (the ABI constants), manifest.json and model.mk. */
#include "aec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ae_arena *a;
  const ae_program *p;
  FILE *o;
  bool has_decode;           /* model_decode was emitted */
  long *kernel_at;           /* where each kernel's text starts in model.c, or NULL */
  const ae_named_buffer *bufs; /* the arena's buffers and their C names (the layout table) */
  int n_bufs;
  const char **param_ids;    /* per parameter tensor: its offset's name in model.c ("e1_1_w") */
} emitter;

#define OUT(...) fprintf(e->o, __VA_ARGS__)

uint64_t ae_hash_text(const char *text, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) { h ^= (unsigned char)text[i]; h *= 1099511628211ULL; }
  return h;
}

static long elems(const ae_node *n) { return ae_shape_elems(n->shape); }
static int channels(const ae_node *n) { return n->shape.rank ? n->shape.d[n->shape.rank - 1] : 1; }

/* A buffer's C name (the run's pointer to it, r->e1 in a kernel). */
static const char *buf_name(emitter *e, const ae_buffer *b) {
  for (int i = 0; i < e->n_bufs; i++)
    if (e->bufs[i].b == b) return e->bufs[i].ident;
  fprintf(stderr, "aec: internal error: a buffer at offset %ld is not in the plan\n", b->off);
  abort();
}
static const char *buf(emitter *e, const ae_buffer *b) { return ae_sprintf(e->a, "r->%s", buf_name(e, b)); }

/* C expressions for a node's value and gradient inside a kernel (r is the run). */
static const char *val(emitter *e, const ae_node *n) {
  const ae_node *root = e->p->root[n->id];
  if (root->op == OP_INPUT) return "r->X";
  if (root->op == OP_TARGET) return "r->T";
  return buf(e, &e->p->val[root->id]);
}
static bool has_grad(emitter *e, const ae_node *n) { return ae_value_has_grad(e->p, n); }
static const char *grad(emitter *e, const ae_node *n) {
  if (!has_grad(e, n)) return "NULL";
  return buf(e, &e->p->grad[e->p->root[n->id]->id]);
}
/* A parameter and its gradient; NULL for a bias that bias=false left out. */
static const char *param_id(emitter *e, const ae_tensor *t) {
  for (int i = 0; i < e->p->params.len; i++)
    if (e->p->params.items[i] == t) return e->param_ids[i];
  return NULL;
}
static const char *pval(emitter *e, const ae_tensor *t) { return t ? ae_sprintf(e->a, "(r->P + %s)", param_id(e, t)) : "NULL"; }
static const char *pgrad(emitter *e, const ae_tensor *t) {
  return !t || t->frozen ? "NULL" : ae_sprintf(e->a, "(r->G + %s)", param_id(e, t));
}

/* Whether the steps give kernel k a step of that kind (steps.c decides, from the
 * registry, the frozen weights and where gradients flow). */
static bool has_step(emitter *e, const ae_kernel *k, ae_step_kind kind) { return ae_kernel_step(e->p, k, kind) != NULL; }

/* The bias gradient step of a conv or dense kernel. */
static void emit_bias_grad(emitter *e, const ae_kernel *k, const char *dy, const char *rows, int cols) {
  if (has_step(e, k, STEP_BIAS_GRAD)) OUT("  aert_bias_grad(%s, %s, %s, %d);\n", pgrad(e, k->b), dy, rows, cols);
}

static const char *act_enum(const ae_node *act) {
  const char *e = act ? ae_op_info_of(act->op)->act_enum : NULL;
  return e ? e : "AERT_ACT_LINEAR";
}

/* Pieces of C that leave out what does nothing: no "x / 1", "p + 0", "1 * sizeof" or
 * loops of one iteration in the generated code. */
static const char *div_by(emitter *e, const char *x, int f) { return f == 1 ? x : ae_sprintf(e->a, "%s / %d", x, f); }
static const char *plus(emitter *e, const char *x, long off) { return off ? ae_sprintf(e->a, "%s + %ld", x, off) : x; }
static const char *times(emitter *e, const char *x, long f) { return f == 1 ? x : ae_sprintf(e->a, "%s * %ld", x, f); }
static const char *floats(emitter *e, long n) { return n == 1 ? "sizeof(aert_real)" : ae_sprintf(e->a, "%ld * sizeof(aert_real)", n); }
/* "v * s - pad" without the parts that are 1 or 0 */
static const char *affine(emitter *e, const char *v, int s, int pad) {
  const char *x = times(e, v, s);
  return pad ? ae_sprintf(e->a, "%s - %d", x, pad) : x;
}
/* Opens "for (int v = 0; v < n; v++[, more]) {", or "{ const int v = 0;" when n is 1. */
static void open_loop(emitter *e, const char *indent, const char *v, long n, const char *more) {
  if (n == 1) OUT("%s{\n%s  const int %s = 0;\n", indent, indent, v);
  else OUT("%sfor (int %s = 0; %s < %ld; %s++%s) {\n", indent, v, v, n, v, more ? more : "");
}

/* ---- sliding windows: the im2col gather and the col2im scatter ---------------------- */
/* For a conv, rows are output pixels and the tensor is its (folded) input; for a
 * transposed conv, rows are input pixels and the tensor is its output. The same
 * index rule (t = row * stride - pad + k) serves both directions. */
typedef struct { int rows_h, rows_w, th, tw, tc, k, s, pad; } window;

static window conv_window(const ae_kernel *k) {
  const ae_node *n = k->node, *x = n->in.items[0];
  int pad = n->pad_same ? (n->k - 1) / 2 : 0;
  if (k->kind == K_CONV) return (window){n->shape.d[0], n->shape.d[1], x->shape.d[0], x->shape.d[1], x->shape.d[2], n->k, n->stride, pad};
  return (window){x->shape.d[0], x->shape.d[1], n->shape.d[0], n->shape.d[1], n->shape.d[2], n->k, n->stride, pad};
}

/* A conv's col2im scatter writes only the sources that take a gradient: the input, or a
 * value computed from it by layers without parameters, takes none (its pointer is NULL). */
static bool skips_source(emitter *e, const ae_kernel *k, int i, bool scatter) {
  return scatter && k->kind == K_CONV && !has_grad(e, ((ae_view *)k->src.items[i])->node);
}

/* ", g0, g1": the gradients of a conv's sources that take one, in source order. */
static const char *source_grads(emitter *e, const ae_kernel *k) {
  const char *list = "";
  for (int i = 0; i < k->src.len; i++)
    if (!skips_source(e, k, i, true)) list = ae_sprintf(e->a, "%s, %s", list, grad(e, ((ae_view *)k->src.items[i])->node));
  return list;
}

static void emit_window_fn(emitter *e, const ae_kernel *k, const char *name, bool scatter) {
  window w = conv_window(k);
  int chunk = k->conv.chunk;
  long row_len = (long)w.k * w.k * w.tc;
  OUT("static void %s(%saert_real *restrict col, int n0", name, scatter ? "const " : "");
  int ns = k->kind == K_CONV ? k->src.len : 1;
  for (int i = 0; i < ns; i++)
    if (!skips_source(e, k, i, scatter)) OUT(", %saert_real *restrict t%d", scatter ? "" : "const ", i);
  OUT(") {\n");
  if (scatter) {
    if (chunk == 1) OUT("  {\n    int n = n0;\n");   /* one image: one thread, as for more */
    else OUT("#pragma omp parallel for schedule(static)\n  for (int img = 0; img < %d; img++) {\n    int n = n0 + img;\n", chunk);
    open_loop(e, "    ", "rh", w.rows_h, NULL);
  } else
    OUT("#pragma omp parallel for schedule(static)\n  for (int row = 0; row < %d; row++) {\n    int n = n0 + %s, rh = %s;\n"
        "    {\n", chunk * w.rows_h, div_by(e, "row", w.rows_h), w.rows_h == 1 ? "0" : ae_sprintf(e->a, "row %% %d", w.rows_h));
  open_loop(e, "      ", "rw", w.rows_w, NULL);
  OUT("        %saert_real *c = col + ((long)(n - n0) * %d + %s + rw) * %ld;\n", scatter ? "const " : "",
      w.rows_h * w.rows_w, times(e, "rh", w.rows_w), row_len);
  open_loop(e, "        ", "kh", w.k, NULL);
  OUT("          int th = %s + kh;\n", affine(e, "rh", w.s, w.pad));
  open_loop(e, "          ", "kw", w.k, ae_sprintf(e->a, ", c += %d", w.tc));
  OUT("            int tw = %s + kw;\n", affine(e, "rw", w.s, w.pad));
  OUT("            if (th < 0 || th >= %d || tw < 0 || tw >= %d) {%s continue; }\n", w.th, w.tw,
      scatter ? "" : ae_sprintf(e->a, " memset(c, 0, %s);", floats(e, w.tc)));
  for (int i = 0; i < ns; i++) {
    if (skips_source(e, k, i, scatter)) continue;
    const ae_view *v = k->kind == K_CONV ? k->src.items[i] : NULL;
    int f = v ? v->factor : 1, off = v ? v->ch_off : 0, c = v ? channels(v->node) : w.tc;
    int sh = w.th / f, sw = w.tw / f;
    const char *at = ae_sprintf(e->a, "t%d + %s", i, times(e, ae_sprintf(e->a, "(((long)n * %d + %s) * %d + %s)", sh,
                                                                     div_by(e, "th", f), sw, div_by(e, "tw", f)), c));
    if (scatter) OUT("            for (int ch = 0; ch < %d; ch++) (%s)[ch] += c[%s];\n", c, at, plus(e, "ch", off));
    else OUT("            memcpy(%s, %s, %s);\n", plus(e, "c", off), at, floats(e, c));
  }
  OUT("          }\n        }\n      }\n    }\n  }\n}\n\n");
}

static bool conv_direct(const ae_kernel *k) { return k->kind == K_CONV && k->conv.algo == CONV_GEMM_1X1; }

/* The first step other than its zeroing that reads or writes gradient buffer g. */
static const ae_step *first_use(const ae_program *p, const ae_buffer *g) {
  for (int i = 0; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i];
    if (st->kind == STEP_ZERO) continue;
    for (int j = 0; j < st->reads.len; j++)
      if (st->reads.items[j] == g) return st;
    for (int j = 0; j < st->writes.len; j++)
      if (st->writes.items[j] == g) return st;
  }
  return NULL;
}

static const ae_buffer *grad_buf(const ae_program *p, const ae_node *n) { return &p->grad[p->root[n->id]->id]; }

/* A direct conv's dx runs direct on whole (half) vectors of input channels: at stride 1 as
 * the convolution of padded dy with the flipped weights, above it by phases; else by
 * im2col and a scatter. */
static bool slide_dx_direct(window w) { return ae_slide_dx_direct(w.tc, w.k, w.s); }

/* Whether k's input gradient stores into the gradient of view v's tensor instead of adding
 * to it: k's dx of that tensor covers every value in one pass (a direct or Winograd
 * convolution on whole vectors of input channels, by phases above stride 1, a 1x1 convolution's GEMM, or
 * an upsampling conv's phases or plain part where that part is this one view), no other
 * view of k reads the tensor, and k is the first step to touch its gradient (later steps
 * add to it, or scale it in place, as before). The zeroing before it is then left out
 * (model_backward): a pass over the buffer less, and dx not read back. */
static bool dx_stores(const emitter *e, const ae_kernel *k, const ae_view *v) {
  const ae_program *p = e->p;
  if (k->kind != K_CONV || !has_grad((emitter *)e, v->node)) return false;
  int same = 0, parts = 0;
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *o = k->src.items[i];
    same += grad_buf(p, o->node) == grad_buf(p, v->node);
    parts += o->factor == v->factor;
  }
  if (same != 1) return false;
  if (k->conv.algo == CONV_UP2) {
    if (parts != 1) return false;
  } else {
    window w = conv_window(k);
    bool slide = k->conv.algo == CONV_SLIDE && slide_dx_direct(w);
    if ((!slide && k->conv.algo != CONV_GEMM_1X1) || k->src.len != 1 || v->factor != 1) return false;
  }
  const ae_step *st = first_use(p, grad_buf(p, v->node));
  return st && st->kind == STEP_INPUT_GRAD && st->k == k;
}

/* Whether a zero step is needed: not where the buffer's first user stores (dx_stores). */
static bool zero_needed(const emitter *e, const ae_buffer *g) {
  const ae_step *st = first_use(e->p, g);
  if (!st || st->kind != STEP_INPUT_GRAD) return true;
  for (int i = 0; i < st->k->src.len; i++) {
    const ae_view *v = st->k->src.items[i];
    if (grad_buf(e->p, v->node) == g) return !dx_stores(e, st->k, v);
  }
  return true;
}

/* A size over the whole batch as model.c writes it: "AEC_BATCH * 784L", n per image times the
 * batch (model.h's constant); a size that does not grow with the batch is a number. */
static const char *batch_of(emitter *e, long n) { return n == 1 ? "AEC_BATCH" : ae_sprintf(e->a, "AEC_BATCH * %ldL", n); }
static const char *num(emitter *e, long n) { return ae_sprintf(e->a, "%ld", n); }

/* C = A B (+= with beta 1): m, n and k as model.c writes them (batch_of or num). */
static void emit_sgemm(emitter *e, bool ta, bool tb, const char *m, const char *n, const char *kk, const char *a, long lda,
                       const char *b, long ldb, float beta, const char *c, long ldc) {
  OUT("    aert_gemm(%d, %d, %s, %s, %s, %s, %ld, %s, %ld, %.0f, %s, %ld);\n", ta, tb, m, n, kk, a, lda, b, ldb, beta, c, ldc);
}

/* A conv's backward first: dy through the activation (y: its output, ys values per image,
 * cout channels), and the bias gradient in the same pass where the bias takes one. */
static void emit_conv_act_backward(emitter *e, const ae_kernel *k, const char *dy, const char *y, long ys, int cout) {
  const char *act = act_enum(k->act);
  double alpha = k->act ? k->act->alpha : 0;
  if (has_step(e, k, STEP_BIAS_GRAD))
    OUT("  aert_act_bias_backward(%s, %s, %s, %s, %d, %s, %.9g);\n", dy, y, pgrad(e, k->b), batch_of(e, ys / cout), cout, act,
        alpha);
  else OUT("  aert_act_backward_inplace(%s, %s, %s, %s, %.9g);\n", dy, y, batch_of(e, ys), act, alpha);
}

/* The loop over a batch of B images, C at a time (n0 the first of each); a block with
 * n0 = 0 when one pass takes them all. */
static const char *chunk_loop(emitter *e, int B, int C) {
  if (C == B) return "  {\n    const int n0 = 0;\n";
  if (C == 1) return "  for (int n0 = 0; n0 < AEC_BATCH; n0++) {\n";
  return ae_sprintf(e->a, "  for (int n0 = 0; n0 < AEC_BATCH; n0 += %d) {\n", C);
}

/* ---- padded copies for the direct convolutions ----------------------------------------- */
/* One part of a conv's input stack: a tensor t of c channels at the stack's size divided
 * by factor (a folded upsample), at channel off (a folded concat). */
typedef struct { const char *t; int c, off, factor; } pad_src;

/* The geometry of a padded copy (aert_pad_geom in runtime/aert_kernels.h): the stack of
 * parts, h x w x tc, zero-padded to hp x wp (pt rows above, pl columns left) in s x s
 * phases, B images per copy, then the slack the register tiles read past the last one. */
static void emit_pad_geom(emitter *e, const char *g, const pad_src *src, int ns, int h, int w, int tc, int pt, int pl, int s,
                          int hp, int wp, int B) {
  OUT("static const aert_stack_part %s_parts[%d] = {", g, ns);
  for (int i = 0; i < ns; i++) OUT("%s{.c = %d, .off = %d, .factor = %d}", i ? ", " : "", src[i].c, src[i].off, src[i].factor);
  OUT("};\nstatic const aert_pad_geom %s = {.batch = %d, .h = %d, .w = %d, .c = %d, .pt = %d, .pl = %d, .s = %d, .hp = %d, "
      ".wp = %d, .slack = %ld, .parts = %d, .part = %s_parts};\n", g, B, h, w, tc, pt, pl, s, hp, wp, (long)AE_SLIDE_SLACK * tc,
      ns, g);
}

/* "(const aert_real *const[]){r->d, r->e3}": the parts' tensors (or gradients) of a call. */
static const char *part_list(emitter *e, const pad_src *src, int ns, bool grads) {
  const char *list = "";
  for (int i = 0; i < ns; i++) list = ae_sprintf(e->a, "%s%s%s", list, i ? ", " : "", src[i].t ? src[i].t : "NULL");
  return ae_sprintf(e->a, "(%saert_real *const[]){%s}", grads ? "" : "const ", list);
}

/* The conv a call runs and the weights it reads: aert_conv_fwd on w, or, where the schedule
 * says Winograd, aert_conv_wino on w and its transform (which falls back to w itself where
 * the trainer's build does not take Winograd). */
static const char *conv_fn(bool wino) { return wino ? "aert_conv_wino" : "aert_conv_fwd"; }
static const char *conv_weights(emitter *e, bool wino, const char *w, const char *buf, long u_at) {
  return wino ? ae_sprintf(e->a, "%s, %s + %ld", w, buf, u_at) : w;
}

/* A conv (fn: the forward or weight-gradient call) of the stack of pad geometry pgeo, its
 * tensors srcs, images n0 ..: the padded copy into xp and fn on it; or, where the schedule
 * says Winograd, fn's _stack form, which reads a plain stack in place instead of copying it
 * (and copies where the trainer's build runs the direct kernel). rest: fn's arguments after
 * the input. */
static void emit_stack_conv(emitter *e, bool wino, const char *fn, const char *pgeo, const char *xp, const char *srcs,
                            const char *geom, const char *rest) {
  if (wino) OUT("    %s_stack(&%s, %s, n0, %s, %s, %s);\n", fn, pgeo, xp, srcs, geom, rest);
  else OUT("    aert_pad_stack(&%s, %s, n0, %s);\n    %s(%s, %s, %s);\n", pgeo, xp, srcs, fn, geom, xp, rest);
}

/* A conv run direct (aert_conv_fwd), C images at a time (k->conv.pchunk): forward on a padded
 * copy of their input stack (split into phases for stride > 1), the weight gradient from
 * the same copy, dx as the stride-1 convolution of padded dy with the flipped weights, for
 * a stride above 1 as the phases of dx, each a convolution of padded dy with its own taps
 * (by im2col when the input channels are not whole half vectors). */
static void emit_slide(emitter *e, const ae_kernel *k, const char *name) {
  const ae_program *p = e->p;
  const ae_node *n = k->node;
  window w = conv_window(k);
  int B = p->batch, C = k->conv.pchunk, cout = n->units, kk = w.k, tc = w.tc, ns = k->src.len, s = w.s;
  int hg = ((w.rows_h - 1) * s + kk + s - 1) / s, wg = ((w.rows_w - 1) * s + kk + s - 1) / s;
  int hp2 = w.th + kk - 1, wp2 = w.tw + kk - 1;
  long xs = (long)w.th * w.tw * tc, ys = elems(k->out);
  pad_src *src = ae_alloc(e->a, sizeof(pad_src) * (size_t)ns), *dsrc = ae_alloc(e->a, sizeof(pad_src) * (size_t)ns);
  const char *dsrcs = source_grads(e, k);
  bool any_dx = has_step(e, k, STEP_INPUT_GRAD), plain = ns == 1 && ((ae_view *)k->src.items[0])->factor == 1;
  for (int i = 0; i < ns; i++) {
    const ae_view *v = k->src.items[i];
    src[i] = (pad_src){val(e, v->node), channels(v->node), v->ch_off, v->factor};
    dsrc[i] = src[i];
    dsrc[i].t = has_grad(e, v->node) ? grad(e, v->node) : NULL;
  }
  bool dx_direct = slide_dx_direct(w), narrow = cout % AE_SLIDE_UNIT != 0;
  const char *scatter = ae_sprintf(e->a, "scatter_%s", name);
  const char *y = val(e, k->out), *dy = grad(e, k->out), *wv = pval(e, k->w);
  pad_src dysrc = {dy, cout, 0, 1};
  emit_pad_geom(e, ae_sprintf(e->a, "pgeo_%s", name), src, ns, w.th, w.tw, tc, w.pad, w.pad, s, hg, wg, C);
  /* padded dy for dx: by k - 1 - pad at stride 1; by phases (stride > 1) by (k - 1) / s
   * before, as far as the phases read */
  int dd = s == 1 ? kk - 1 - w.pad : (kk - 1) / s;
  int sh = s == 1 ? hp2 : ae_dx_phase_span(kk, s, w.pad, w.th, w.rows_h), sw = s == 1 ? wp2 : ae_dx_phase_span(kk, s, w.pad, w.tw, w.rows_w);
  if (any_dx && dx_direct)
    emit_pad_geom(e, ae_sprintf(e->a, "dpgeo_%s", name), &dysrc, 1, w.rows_h, w.rows_w, cout, dd, dd, 1, sh, sw, C);
  if (any_dx && dx_direct && s > 1) {
    OUT("static const aert_dx_geom xgeo_%s = {.batch = %d, .s = %d, .k = %d, .pt = %d, .pl = %d, .h = %d, .w = %d, .ho = %d, "
        ".wo = %d, .hp = %d, .wp = %d, .cin = %d, .cout = %d};\n", name, C, s, kk, w.pad, w.pad, w.th, w.tw, w.rows_h, w.rows_w,
        sh, sw, cout, tc);
  }
  if (any_dx && !dx_direct) emit_window_fn(e, k, scatter, true);
  const char *pgeo = ae_sprintf(e->a, "pgeo_%s", name), *srcs = part_list(e, src, ns, false);
  /* the scratch: forward the padded copy; backward the padded copy, then (reusing it)
   * padded dy, the flipped weights and the stack's dx, or the columns */
  const char *col = k->scratch[0].used ? buf(e, &k->scratch[0]) : NULL, *bcol = k->scratch[1].used ? buf(e, &k->scratch[1]) : NULL;
  /* the geometry the kernels read by name: forward and weight gradient; dx (stride 1, whole
   * vectors of input channels) as a conv of padded dy with the flipped weights */
  const char *geom = ae_sprintf(e->a, "&geo_%s", name), *dgeom = ae_sprintf(e->a, "&dgeo_%s", name);
  OUT("static const aert_conv_geom geo_%s = {.batch = %d, .s = %d, .hg = %d, .wg = %d, .cin = %d, .k = %d, .ho = %d, .wo = %d, "
      ".cout = %d};\n", name, C, s, hg, wg, tc, kk, w.rows_h, w.rows_w, cout);
  if (any_dx && dx_direct && s == 1)
    OUT("static const aert_conv_geom dgeo_%s = {.batch = %d, .s = 1, .hg = %d, .wg = %d, .cin = %d, .k = %d, .ho = %d, .wo = %d, "
        ".cout = %d};\n", name, C, hp2, wp2, cout, kk, w.th, w.tw, tc);
  OUT("\n");
  long wt = k->conv.weights_at;
  OUT("static void %s_forward(const run *r) {\n", name);
  const ae_conv_sched *c = &k->conv;
  if (c->wino) OUT("  aert_wino_weights(%s, %s + %ld, 3, %d, %d);\n", wv, col, c->wino_at, tc, cout);
  OUT("%s", chunk_loop(e, B, C));
  /* the direct kernel adds the bias and applies a ReLU (or none) as its tiles store */
  const char *act = act_enum(k->act);
  if (narrow)
    emit_stack_conv(e, true, "aert_conv_fwd_narrow", pgeo, col, srcs, geom,
                    ae_sprintf(e->a, "%s, %s + %ld, %s + (long)n0 * %ld", wv, col, wt, y, ys));
  else if (c->store_act)
    emit_stack_conv(e, false, "aert_conv_fwd_bias_act", pgeo, col, srcs, geom,
                    ae_sprintf(e->a, "%s, %s + (long)n0 * %ld, %s, %s", wv, y, ys, pval(e, k->b), act));
  else
    emit_stack_conv(e, c->wino, conv_fn(c->wino), pgeo, col, srcs, geom,
                    ae_sprintf(e->a, "%s, %s + (long)n0 * %ld, 0", conv_weights(e, c->wino, wv, col, c->wino_at), y, ys));
  OUT("  }\n");
  if (!c->store_act)
    OUT("  aert_bias_act(%s, %s, %s, %d, %s, %.9g);\n", y, pval(e, k->b), batch_of(e, ys / cout), cout, act,
        k->act ? k->act->alpha : 0);
  OUT("}\n");
  if (!ae_kernel_has_backward(p, k)) return;
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  emit_conv_act_backward(e, k, dy, y, ys, cout);
  if (has_step(e, k, STEP_WEIGHT_GRAD)) {
    OUT("%s", chunk_loop(e, B, C));
    if (c->wdw)
      emit_stack_conv(e, true, "aert_conv_wino_dw", pgeo, bcol, srcs, geom,
                      ae_sprintf(e->a, "%s + (long)n0 * %ld, %s + %ld, %s", dy, ys, bcol, c->wdw_at, pgrad(e, k->w)));
    else
      emit_stack_conv(e, narrow, narrow ? "aert_conv_dw_narrow" : "aert_conv_dw", pgeo, bcol, srcs, geom,
                      ae_sprintf(e->a, "%s + (long)n0 * %ld, %s", dy, ys, pgrad(e, k->w)));
    OUT("  }\n");
  }
  if (any_dx && dx_direct && s > 1) {
    /* by phases: each a stride-1 conv of padded dy with its few taps, stored into dx in place */
    long wf = k->conv.flip_at, dxs = k->conv.dstack_at;
    const char *dpgeo = ae_sprintf(e->a, "dpgeo_%s", name), *dys = part_list(e, &dysrc, 1, false);
    const char *xgeom = ae_sprintf(e->a, "&xgeo_%s", name);
    OUT("  aert_dx_weights(%s, %s, %s + %ld);\n", xgeom, wv, bcol, wf);
    OUT("%s", chunk_loop(e, B, C));
    if (plain)
      emit_stack_conv(e, false, "aert_conv_dx_phases", dpgeo, bcol, dys, xgeom,
                      ae_sprintf(e->a, "%s + %ld, %s + (long)n0 * %ld, %d", bcol, wf, dsrc[0].t, xs,
                                 !dx_stores(e, k, k->src.items[0])));
    else {
      emit_stack_conv(e, false, "aert_conv_dx_phases", dpgeo, bcol, dys, xgeom,
                      ae_sprintf(e->a, "%s + %ld, %s + %ld, 0", bcol, wf, bcol, dxs));
      OUT("    aert_unstack(&pgeo_%s, %s + %ld, n0, %s);\n", name, bcol, dxs, part_list(e, dsrc, ns, true));
    }
    OUT("  }\n");
  } else if (any_dx && dx_direct) {
    long wf = k->conv.flip_at, dxs = k->conv.dstack_at;
    /* the flipped weights, Winograd-transformed when dx runs so */
    const char *conv = conv_fn(c->dwino), *wfs = conv_weights(e, c->dwino, ae_sprintf(e->a, "%s + %ld", bcol, wf), bcol, c->dwino_at);
    OUT("  aert_conv_flip(%s, %s + %ld, %d, %d, %d);\n", wv, bcol, wf, kk, tc, cout);
    if (c->dwino) OUT("  aert_wino_weights(%s + %ld, %s + %ld, 3, %d, %d);\n", bcol, wf, bcol, c->dwino_at, cout, tc);
    const char *dpgeo = ae_sprintf(e->a, "dpgeo_%s", name), *dys = part_list(e, &dysrc, 1, false);
    OUT("%s", chunk_loop(e, B, C));
    if (plain)
      emit_stack_conv(e, c->dwino, conv, dpgeo, bcol, dys, dgeom,
                      ae_sprintf(e->a, "%s, %s + (long)n0 * %ld, %d", wfs, dsrc[0].t, xs, !dx_stores(e, k, k->src.items[0])));
    else {
      emit_stack_conv(e, c->dwino, conv, dpgeo, bcol, dys, dgeom, ae_sprintf(e->a, "%s, %s + %ld, 0", wfs, bcol, dxs));
      OUT("    aert_unstack(&pgeo_%s, %s + %ld, n0, %s);\n", name, bcol, dxs, part_list(e, dsrc, ns, true));
    }
    OUT("  }\n");
  } else if (any_dx) {
    long rows = (long)k->conv.chunk * w.rows_h * w.rows_w, ktot = (long)kk * kk * tc;
    OUT("%s", chunk_loop(e, B, k->conv.chunk));
    emit_sgemm(e, false, true, num(e, rows), num(e, ktot), num(e, cout), ae_sprintf(e->a, "%s + (long)n0 * %ld", dy, ys), cout,
               wv, cout, 0, bcol, ktot);
    OUT("    %s(%s, n0%s);\n  }\n", scatter, bcol, dsrcs);
  }
  OUT("}\n");
}

/* The views of an up2 conv with one upsampling factor (2: read at the small size, 1: the
 * plain views beside them), as sources of their own stack: channel offsets within it,
 * factor 1; tc counts its channels, dsrc holds the gradients that exist (NULL: none). */
typedef struct { pad_src *src, *dsrc; const ae_view **view; int n, tc; bool any_dx; } up2_part;

static up2_part up2_views(emitter *e, const ae_kernel *k, int factor) {
  up2_part u = {ae_alloc(e->a, sizeof(pad_src) * (size_t)k->src.len), ae_alloc(e->a, sizeof(pad_src) * (size_t)k->src.len),
                ae_alloc(e->a, sizeof(ae_view *) * (size_t)k->src.len), 0, 0, false};
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    if (v->factor != factor) continue;
    u.view[u.n] = v;
    u.src[u.n] = (pad_src){val(e, v->node), channels(v->node), u.tc, 1};
    u.dsrc[u.n] = u.src[u.n];
    u.dsrc[u.n].t = has_grad(e, v->node) ? grad(e, v->node) : NULL;
    u.any_dx = u.any_dx || u.dsrc[u.n].t;
    u.tc += u.src[u.n].c;
    u.n++;
  }
  return u;
}

/* The rows of a part's views between the conv's weights (tc input channels) and the part's
 * own (to_part: gathered from w; else added back into w). */
static void emit_up2_rows(emitter *e, const up2_part *u, const char *w, int tc, const char *wpart, int cout, bool to_part) {
  for (int i = 0; i < u->n; i++)
    if (to_part) OUT("  aert_conv_rows(%s, %d, %d, %s, %d, %d, %d, 9, %d, 0);\n", w, tc, u->view[i]->ch_off, wpart, u->tc, u->src[i].off,
                     u->src[i].c, cout);
    else OUT("  aert_conv_rows(%s, %d, %d, %s, %d, %d, %d, 9, %d, 1);\n", wpart, u->tc, u->src[i].off, w, tc, u->view[i]->ch_off,
             u->src[i].c, cout);
}

/* A 3x3 conv of 2x upsampled views run as the four phases of the small image
 * (k->conv.algo CONV_UP2, aert_up2_* in runtime/aert_kernels.h), C images at a time:
 * forward, the padded small stack through the phase weights into z, scattered to y; the
 * weight gradient from the same copy and dy by phase (s), folded back onto the 3x3 taps;
 * dx of the small stack as the 2x2 conv of s with the flipped phase weights. Plain views
 * beside them (a U-Net's skip) run at full size with their rows of the weights, as
 * Winograd F(2x2, 3x3) (aert_conv_wino): forward first (y), the phases added to it. */
static void emit_up2(emitter *e, const ae_kernel *k, const char *name) {
  const ae_program *p = e->p;
  const ae_node *n = k->node, *x = n->in.items[0];
  const ae_conv_sched *c = &k->conv;
  int B = p->batch, C = c->pchunk, cout = n->units, co4 = 4 * cout;
  int H = x->shape.d[0], W = x->shape.d[1], h = H / 2, w = W / 2, tc = x->shape.d[2];
  up2_part u = up2_views(e, k, 2), q = up2_views(e, k, 1);
  int cu = u.tc, cp = q.tc;
  long xs = (long)h * w * cu, ys = elems(k->out);
  /* the padded copies: the small stack of the upsampled views (upad_), the plain views'
   * stack (ppad_) and dy (dpad_) at full size */
  bool bwd = ae_kernel_has_backward(p, k);
  const char *y = val(e, k->out), *dy = grad(e, k->out), *wv = pval(e, k->w);
  pad_src dysrc = {dy, cout, 0, 1};
  emit_pad_geom(e, ae_sprintf(e->a, "upad_%s", name), u.src, u.n, h, w, cu, 1, 1, 1, h + 2, w + 2, C);
  if (cp) emit_pad_geom(e, ae_sprintf(e->a, "ppad_%s", name), q.src, q.n, H, W, cp, 1, 1, 1, H + 2, W + 2, C);
  if (cp && bwd && q.any_dx) emit_pad_geom(e, ae_sprintf(e->a, "dpad_%s", name), &dysrc, 1, H, W, cout, 1, 1, 1, H + 2, W + 2, C);
  const char *uvals = part_list(e, u.src, u.n, false), *qvals = part_list(e, q.src, q.n, false);
  OUT("static const aert_conv_geom geo_%s = {.batch = %d, .s = 1, .hg = %d, .wg = %d, .cin = %d, .k = 2, .ho = %d, .wo = %d, "
      ".cout = %d};\n", name, C, h + 2, w + 2, cu, h + 1, w + 1, co4);
  if (bwd && u.any_dx)
    OUT("static const aert_conv_geom dgeo_%s = {.batch = %d, .s = 1, .hg = %d, .wg = %d, .cin = %d, .k = 2, .ho = %d, .wo = %d, "
        ".cout = %d};\n", name, C, h + 1, w + 1, co4, h, w, cu);
  if (cp)
    OUT("static const aert_conv_geom pgeo_%s = {.batch = %d, .s = 1, .hg = %d, .wg = %d, .cin = %d, .k = 3, .ho = %d, .wo = %d, "
        ".cout = %d};\n", name, C, H + 2, W + 2, cp, H, W, cout);
  if (cp && bwd && q.any_dx)
    OUT("static const aert_conv_geom pdgeo_%s = {.batch = %d, .s = 1, .hg = %d, .wg = %d, .cin = %d, .k = 3, .ho = %d, .wo = %d, "
        ".cout = %d};\n", name, C, H + 2, W + 2, cout, H, W, cp);
  OUT("\n");
  const char *col = buf(e, &k->scratch[0]);
  /* the upsampled views' weights: the conv's own, or (beside plain views) their rows */
  const char *wu = cp ? ae_sprintf(e->a, "%s + %ld", col, c->mix_at) : wv;
  /* the plain views' conv: Winograd F(2x2, 3x3) where the schedule says so */
  const char *pconv = conv_fn(c->wino);
  OUT("static void %s_forward(const run *r) {\n", name);
  if (cp) {
    emit_up2_rows(e, &u, wv, tc, wu, cout, true);
    emit_up2_rows(e, &q, wv, tc, ae_sprintf(e->a, "%s + %ld", col, c->wp_at), cout, true);
    if (c->wino) OUT("  aert_wino_weights(%s + %ld, %s + %ld, 3, %d, %d);\n", col, c->wp_at, col, c->wino_at, cp, cout);
  }
  OUT("  aert_up2_weights(%s, %s + %ld, %d, %d);\n", wu, col, c->weights_at, cu, cout);
  if (c->pwino) OUT("  aert_wino_weights(%s + %ld, %s + %ld, 2, %d, %d);\n", col, c->weights_at, col, c->pwino_at, cu, co4);
  /* the pad geometries and conv geometries by name, and the buffers of the padded copies */
  const char *ppad = ae_sprintf(e->a, "ppad_%s", name), *upad = ae_sprintf(e->a, "upad_%s", name);
  const char *dpad = ae_sprintf(e->a, "dpad_%s", name), *ugeo = ae_sprintf(e->a, "&geo_%s", name);
  const char *pgeo = ae_sprintf(e->a, "&pgeo_%s", name), *pdgeo = ae_sprintf(e->a, "&pdgeo_%s", name);
  OUT("%s", chunk_loop(e, B, C));
  if (cp)
    emit_stack_conv(e, c->wino, pconv, ppad, ae_sprintf(e->a, "%s + %ld", col, c->xp_at), qvals, pgeo,
                    ae_sprintf(e->a, "%s, %s + (long)n0 * %ld, 0",
                               conv_weights(e, c->wino, ae_sprintf(e->a, "%s + %ld", col, c->wp_at), col, c->wino_at), y, ys));
  emit_stack_conv(e, c->pwino, conv_fn(c->pwino), upad, col, uvals, ugeo,
                  ae_sprintf(e->a, "%s, %s + %ld, 0",
                             conv_weights(e, c->pwino, ae_sprintf(e->a, "%s + %ld", col, c->weights_at), col, c->pwino_at), col,
                             c->z_at));
  OUT("    aert_up2_unshuffle(%s + %ld, %s + (long)n0 * %ld, %d, %d, %d, %d, %d);\n  }\n", col, c->z_at, y, ys, C, h, w, cout, cp > 0);
  OUT("  aert_bias_act(%s, %s, %s, %d, %s, %.9g);\n}\n", y, pval(e, k->b), batch_of(e, ys / cout), cout, act_enum(k->act),
      k->act ? k->act->alpha : 0);
  if (!bwd) return;
  bool dw = has_step(e, k, STEP_WEIGHT_GRAD);
  const char *bcol = buf(e, &k->scratch[1]);
  const char *bwu = cp ? ae_sprintf(e->a, "%s + %ld", bcol, c->mix_at) : wv, *bwp = ae_sprintf(e->a, "%s + %ld", bcol, c->wp_at);
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  emit_conv_act_backward(e, k, dy, y, ys, cout);
  if (cp && u.any_dx) emit_up2_rows(e, &u, wv, tc, bwu, cout, true);
  if (cp && q.any_dx) {
    emit_up2_rows(e, &q, wv, tc, bwp, cout, true);
    OUT("  aert_conv_flip(%s, %s + %ld, 3, %d, %d);\n", bwp, bcol, c->wfp_at, cp, cout);
    if (c->wino) OUT("  aert_wino_weights(%s + %ld, %s + %ld, 3, %d, %d);\n", bcol, c->wfp_at, bcol, c->dwino_at, cout, cp);
  }
  if (u.any_dx)   /* the phase weights, built where their gradient goes next, then flipped */
    OUT("  aert_up2_weights(%s, %s + %ld, %d, %d);\n  aert_conv_flip(%s + %ld, %s + %ld, 2, %d, %d);\n", bwu, bcol, c->dw2_at, cu,
        cout, bcol, c->dw2_at, bcol, c->flip_at, cu, co4);
  if (u.any_dx && c->pwino)
    OUT("  aert_wino_weights(%s + %ld, %s + %ld, 2, %d, %d);\n", bcol, c->flip_at, bcol, c->pdwino_at, co4, cu);
  /* dx: the phases' and the plain views' flipped weights (and their transforms) */
  const char *pflip = conv_weights(e, c->pwino, ae_sprintf(e->a, "%s + %ld", bcol, c->flip_at), bcol, c->pdwino_at);
  const char *pwf = conv_weights(e, c->wino, ae_sprintf(e->a, "%s + %ld", bcol, c->wfp_at), bcol, c->dwino_at);
  const char *phconv = conv_fn(c->pwino);
  if (dw) OUT("  memset(%s + %ld, 0, %ld * sizeof(aert_real));\n", bcol, c->dw2_at, 4L * cu * co4);
  if (dw && cp)
    OUT("  memset(%s, 0, %ld * sizeof(aert_real));\n  memset(%s + %ld, 0, %ld * sizeof(aert_real));\n", bwu, 9L * cu * cout, bcol,
        c->dwp_at, 9L * cp * cout);
  OUT("%s    aert_up2_shuffle(%s + (long)n0 * %ld, %s + %ld, %d, %d, %d, %d, %ld);\n", chunk_loop(e, B, C), dy, ys, bcol, c->s_at, C,
      h, w, cout, (long)AE_SLIDE_SLACK * co4);
  if (dw)
    emit_stack_conv(e, c->pwdw, c->pwdw ? "aert_conv_wino_dw" : "aert_conv_dw", upad, bcol, uvals, ugeo,
                    ae_sprintf(e->a, "%s + %ld, %s%s + %ld", bcol, c->s_at,
                               c->pwdw ? ae_sprintf(e->a, "%s + %ld, ", bcol, c->pwdw_at) : "", bcol, c->dw2_at));
  if (u.any_dx && u.n == 1)
    OUT("    %s(&dgeo_%s, %s + %ld, %s, %s + (long)n0 * %ld, %d);\n", phconv, name, bcol, c->s_at, pflip, u.dsrc[0].t, xs,
        !dx_stores(e, k, u.view[0]));
  else if (u.any_dx)
    OUT("    %s(&dgeo_%s, %s + %ld, %s, %s + %ld, 0);\n    aert_unstack(&upad_%s, %s + %ld, n0, %s);\n", phconv, name, bcol,
        c->s_at, pflip, bcol, c->dstack_at, name, bcol, c->dstack_at, part_list(e, u.dsrc, u.n, true));
  if (cp && dw)
    emit_stack_conv(e, c->wdw, c->wdw ? "aert_conv_wino_dw" : "aert_conv_dw", ppad, ae_sprintf(e->a, "%s + %ld", bcol, c->xp_at),
                    qvals, pgeo,
                    ae_sprintf(e->a, "%s + (long)n0 * %ld, %s%s + %ld", dy, ys,
                               c->wdw ? ae_sprintf(e->a, "%s + %ld, ", bcol, c->wdw_at) : "", bcol, c->dwp_at));
  if (cp && q.any_dx) {
    const char *dyp = ae_sprintf(e->a, "%s + %ld", bcol, c->dyp_at), *dys = part_list(e, &dysrc, 1, false);
    if (q.n == 1)
      emit_stack_conv(e, c->wino, pconv, dpad, dyp, dys, pdgeo,
                      ae_sprintf(e->a, "%s, %s + (long)n0 * %ld, %d", pwf, q.dsrc[0].t, (long)H * W * cp, !dx_stores(e, k, q.view[0])));
    else {
      emit_stack_conv(e, c->wino, pconv, dpad, dyp, dys, pdgeo, ae_sprintf(e->a, "%s, %s + %ld, 0", pwf, bcol, c->dsp_at));
      OUT("    aert_unstack(&ppad_%s, %s + %ld, n0, %s);\n", name, bcol, c->dsp_at, part_list(e, q.dsrc, q.n, true));
    }
  }
  OUT("  }\n");
  if (dw) OUT("  aert_up2_fold(%s + %ld, %s, %d, %d);\n", bcol, c->dw2_at, cp ? bwu : pgrad(e, k->w), cu, cout);
  if (dw && cp) {
    emit_up2_rows(e, &u, pgrad(e, k->w), tc, bwu, cout, false);
    emit_up2_rows(e, &q, pgrad(e, k->w), tc, ae_sprintf(e->a, "%s + %ld", bcol, c->dwp_at), cout, false);
  }
  OUT("}\n");
}

static void emit_conv(emitter *e, const ae_kernel *k, const char *name) {
  if (k->conv.algo == CONV_UP2) { emit_up2(e, k, name); return; }
  if (k->conv.algo == CONV_SLIDE) { emit_slide(e, k, name); return; }
  const ae_program *p = e->p;
  window w = conv_window(k);
  const ae_node *n = k->node;
  int B = p->batch, chunk = k->conv.chunk, cout = n->units;
  long rows = (long)chunk * w.rows_h * w.rows_w, ktot = (long)w.k * w.k * w.tc;
  bool conv = k->kind == K_CONV, direct = conv_direct(k);
  const char *col = k->scratch[0].used ? buf(e, &k->scratch[0]) : NULL;
  int ns = conv ? k->src.len : 1;
  const char *srcs = "", *dsrcs = conv ? source_grads(e, k) : "";
  bool any_dx = has_step(e, k, STEP_INPUT_GRAD);
  for (int i = 0; i < ns; i++) srcs = ae_sprintf(e->a, "%s, %s", srcs, val(e, ((ae_view *)k->src.items[i])->node));
  const char *gather = ae_sprintf(e->a, "gather_%s", name), *scatter = ae_sprintf(e->a, "scatter_%s", name);
  if (!direct) emit_window_fn(e, k, gather, false);
  if (!direct && (!conv || any_dx)) emit_window_fn(e, k, scatter, true);
  const char *y = val(e, k->out), *dy = grad(e, k->out);
  const char *x0 = val(e, ((ae_view *)k->src.items[0])->node), *dx0 = grad(e, ((ae_view *)k->src.items[0])->node);
  long xs = conv ? 0 : elems(n->in.items[0]) , ys = elems(k->out);
  /* forward */
  OUT("static void %s_forward(const run *r) {\n", name);
  if (direct) {
    emit_sgemm(e, false, false, batch_of(e, (long)w.rows_h * w.rows_w), num(e, cout), num(e, w.tc), x0, w.tc, pval(e, k->w),
               cout, 0, y, cout);
  } else if (conv) {
    OUT("%s    %s(%s, n0%s);\n", chunk_loop(e, B, chunk), gather, col, srcs);
    emit_sgemm(e, false, false, num(e, rows), num(e, cout), num(e, ktot), col, ktot, pval(e, k->w), cout, 0,
               ae_sprintf(e->a, "%s + (long)n0 * %ld", y, ys), cout);
    OUT("  }\n");
  } else {
    int cin = channels(n->in.items[0]);
    OUT("  memset(%s, 0, sizeof(aert_real) * %s);\n", y, batch_of(e, ys));
    OUT("%s", chunk_loop(e, B, chunk));
    emit_sgemm(e, false, false, num(e, rows), num(e, ktot), num(e, cin), ae_sprintf(e->a, "%s + (long)n0 * %ld", x0, xs), cin,
               pval(e, k->w), ktot, 0, col, ktot);
    OUT("    %s(%s, n0, %s);\n  }\n", scatter, col, y);
  }
  OUT("  aert_bias_act(%s, %s, %s, %d, %s, %.9g);\n}\n", y, pval(e, k->b), batch_of(e, ys / cout), cout, act_enum(k->act),
      k->act ? k->act->alpha : 0);
  if (!ae_kernel_has_backward(p, k)) return;
  OUT("\n");
  /* backward: the columns of the weight gradient, then those that carry dx back */
  col = k->scratch[1].used ? buf(e, &k->scratch[1]) : NULL;
  const char *dcol = col ? ae_sprintf(e->a, "(%s + %ld)", col, k->conv.col_floats) : NULL;
  OUT("static void %s_backward(const run *r) {\n", name);
  emit_conv_act_backward(e, k, dy, y, ys, cout);
  bool dw = has_step(e, k, STEP_WEIGHT_GRAD);
  if (direct) {
    const char *m = batch_of(e, (long)w.rows_h * w.rows_w);
    if (dw) emit_sgemm(e, true, false, num(e, w.tc), num(e, cout), m, x0, w.tc, dy, cout, 1, pgrad(e, k->w), cout);
    if (any_dx) emit_sgemm(e, false, true, m, num(e, w.tc), num(e, cout), dy, cout, pval(e, k->w), cout, !dx_stores(e, k, k->src.items[0]), dx0, w.tc);
  } else if (conv) {
    OUT("%s", chunk_loop(e, B, chunk));
    const char *dyn = ae_sprintf(e->a, "%s + (long)n0 * %ld", dy, ys);
    if (dw) {
      OUT("    %s(%s, n0%s);\n", gather, col, srcs);
      emit_sgemm(e, true, false, num(e, ktot), num(e, cout), num(e, rows), col, ktot, dyn, cout, 1, pgrad(e, k->w), cout);
    }
    if (any_dx) {
      emit_sgemm(e, false, true, num(e, rows), num(e, ktot), num(e, cout), dyn, cout, pval(e, k->w), cout, 0, dcol, ktot);
      OUT("    %s(%s, n0%s);\n", scatter, dcol, dsrcs);
    }
    OUT("  }\n");
  } else {
    int cin = channels(n->in.items[0]);
    OUT("%s    %s(%s, n0, %s);\n", chunk_loop(e, B, chunk), gather, dcol, dy);
    if (dw)
      emit_sgemm(e, true, false, num(e, cin), num(e, ktot), num(e, rows), ae_sprintf(e->a, "%s + (long)n0 * %ld", x0, xs), cin,
                 dcol, ktot, 1, pgrad(e, k->w), ktot);
    if (any_dx)
      emit_sgemm(e, false, true, num(e, rows), num(e, cin), num(e, ktot), dcol, ktot, pval(e, k->w), ktot, 1,
                 ae_sprintf(e->a, "%s + (long)n0 * %ld", dx0, xs), cin);
    OUT("  }\n");
  }
  OUT("}\n");
}

static void emit_dense(emitter *e, const ae_kernel *k, const char *name) {
  int in = (int)elems(k->node->in.items[0]), out = k->node->units;
  const ae_node *x = ((ae_view *)k->src.items[0])->node;
  const char *y = val(e, k->out), *dy = grad(e, k->out), *dx = grad(e, x);
  OUT("static void %s_forward(const run *r) {\n", name);
  OUT("  aert_dense_forward(%s, %s, %s, %s, AEC_BATCH, %d, %d, %s, %.9g);\n}\n", val(e, x), pval(e, k->w), pval(e, k->b), y, in,
      out, act_enum(k->act), k->act ? k->act->alpha : 0);
  if (!ae_kernel_has_backward(e->p, k)) return;
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  OUT("  aert_act_backward_inplace(%s, %s, %s, %s, %.9g);\n", dy, y, batch_of(e, out), act_enum(k->act), k->act ? k->act->alpha : 0);
  emit_bias_grad(e, k, dy, "AEC_BATCH", out);
  if (has_step(e, k, STEP_WEIGHT_GRAD)) OUT("  aert_dense_dw(%s, %s, %s, AEC_BATCH, %d, %d);\n", pgrad(e, k->w), val(e, x), dy, in, out);
  if (has_step(e, k, STEP_INPUT_GRAD))   /* through the weights transposed in the backward scratch */
    OUT("  aert_dense_dx(%s, %s, %s, %s, AEC_BATCH, %d, %d);\n", dx, dy, pval(e, k->w), buf(e, &k->scratch[1]), in, out);
  OUT("}\n");
}

/* Kernels that call one helper forward and one backward. */
static void emit_simple(emitter *e, const ae_kernel *k, const char *name) {
  const ae_node *n = k->node, *o = k->out;
  const ae_node *x = ((ae_view *)k->src.items[0])->node;
  const char *y = val(e, o), *dy = grad(e, o), *xv = val(e, x), *dx = grad(e, x);
  const char *N = batch_of(e, elems(o)), *rows = batch_of(e, elems(o) / channels(o));
  const char *seed = ae_sprintf(e->a, "aert_hash64(r->seed + %d), r->first * %ldu", k->id, elems(o));
  char fwd[512], bwd[1024] = "";
  const ae_node *in = n->in.items[0];
  switch (k->kind) {
  case K_POOL: {
    int ismax = n->op == OP_MAXPOOL;
    const char *dims = ae_sprintf(e->a, "AEC_BATCH, %d, %d, %d, %d, %d, %d, %d, %d", in->shape.d[0], in->shape.d[1], in->shape.d[2],
                                  n->k, n->stride, n->shape.d[0], n->shape.d[1], ismax);
    snprintf(fwd, sizeof fwd, "aert_pool_forward(%s, %s, %s);", xv, y, dims);
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_pool_backward(%s, %s, %s, %s, %s);", dx, dy, xv, y, dims);
    break;
  }
  case K_UPSAMPLE: {
    const char *dims = ae_sprintf(e->a, "AEC_BATCH, %d, %d, %d, %d", in->shape.d[0], in->shape.d[1], in->shape.d[2], n->factor);
    const char *mode = n->bilinear ? "_bilinear" : "";
    snprintf(fwd, sizeof fwd, "aert_upsample%s_forward(%s, %s, %s);", mode, xv, y, dims);
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_upsample%s_backward(%s, %s, %s);", mode, dx, dy, dims);
    break;
  }
  case K_ACT:
    snprintf(fwd, sizeof fwd, "aert_act_forward(%s, %s, %s, %s, %.9g);", xv, y, N, act_enum(n), n->alpha);
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_act_backward(%s, %s, %s, %s, %s, %.9g);", dx, dy, y, N, act_enum(n), n->alpha);
    break;
  case K_SOFTMAX:
    snprintf(fwd, sizeof fwd, "aert_softmax_forward(%s, %s, %s, %d);", xv, y, rows, channels(o));
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_softmax_backward(%s, %s, %s, %s, %d);", dx, dy, y, rows, channels(o));
    break;
  case K_DROPOUT:
    snprintf(fwd, sizeof fwd, "aert_dropout_forward(%s, %s, %s, %.9g, r->training, %s);", xv, y, N, n->rate, seed);
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_dropout_backward(%s, %s, %s, %.9g, %s);", dx, dy, N, n->rate, seed);
    break;
  case K_NOISE:
    snprintf(fwd, sizeof fwd, "aert_noise_forward(%s, %s, %s, %.9g, %.9g, %.9g, r->training, %s);", xv, y, N, n->stddev, n->lo, n->hi, seed);
    if (has_grad(e, x)) snprintf(bwd, sizeof bwd, "aert_noise_backward(%s, %s, %s, %s, %.9g, %.9g);", dx, dy, y, N, n->lo, n->hi);
    break;
  case K_SAMPLE: {
    const ae_node *lv = ((ae_view *)k->src.items[1])->node;
    snprintf(fwd, sizeof fwd, "aert_sample_forward(%s, %s, %s, %s, r->training, %s);", xv, val(e, lv), y, N, seed);
    snprintf(bwd, sizeof bwd, "aert_sample_backward(%s, %s, %s, %s, %s, %s);", dx, grad(e, lv), dy, val(e, lv), N, seed);
    break;
  }
  case K_BATCHNORM: {
    int c = channels(o);
    const char *stats = buf(e, &k->stats);
    const char *use_batch = k->w->frozen ? "0" : "r->training";
    snprintf(fwd, sizeof fwd, "aert_batchnorm_forward(%s, %s, %s, %s, (aert_real *)%s, (aert_real *)%s, %s, %s, %d, %.9g, %.9g, %s);\n"
             "  aert_bias_act(%s, NULL, %s, %d, %s, %.9g);", xv, y, pval(e, k->w), pval(e, k->b), pval(e, k->rmean),
             pval(e, k->rvar), stats, rows, c, n->momentum, n->eps, use_batch, y, rows, c, act_enum(k->act), k->act ? k->act->alpha : 0);
    snprintf(bwd, sizeof bwd, "aert_act_backward_inplace(%s, %s, %s, %s, %.9g);\n  aert_batchnorm_backward(%s, %s, %s, %s, %s, %s, %s, %s, %d, %s);",
             dy, y, N, act_enum(k->act), k->act ? k->act->alpha : 0, dx, pgrad(e, k->w), pgrad(e, k->b), dy, xv,
             pval(e, k->w), stats, rows, c, k->w->frozen ? "0" : "1");
    break;
  }
  default: break;
  }
  OUT("static void %s_forward(const run *r) {\n  %s\n}\n", name, fwd);
  if (ae_kernel_has_backward(e->p, k))
    OUT("\nstatic void %s_backward(const run *r) {\n  %s\n}\n", name, bwd[0] ? bwd : "(void)r;  /* no gradient flows into its input */");
}

/* concat and add: one line per input. */
static void emit_join(emitter *e, const ae_kernel *k, const char *name) {
  const ae_node *o = k->out;
  const char *pix = batch_of(e, elems(o) / channels(o)), *all = batch_of(e, elems(o));
  OUT("static void %s_forward(const run *r) {\n", name);
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    if (k->kind == K_CONCAT) OUT("  aert_concat_forward(%s, %s, %s, %d, %d, %d);\n", val(e, v->node), val(e, o), pix,
                                channels(v->node), v->ch_off, channels(o));
    else if (i == 0) OUT("  memcpy(%s, %s, sizeof(aert_real) * %s);\n", val(e, o), val(e, v->node), all);
    else OUT("  aert_accumulate(%s, %s, %s);\n", val(e, o), val(e, v->node), all);
  }
  OUT("}\n");
  if (!ae_kernel_has_backward(e->p, k)) return;
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    if (!has_grad(e, v->node)) continue;
    const char *dx = grad(e, v->node);
    if (k->kind == K_CONCAT) OUT("  aert_concat_backward(%s, %s, %s, %d, %d, %d);\n", dx, grad(e, o), pix,
                                channels(v->node), v->ch_off, channels(o));
    else OUT("  aert_accumulate(%s, %s, %s);\n", dx, grad(e, o), all);
  }
  OUT("}\n");
}

/* ---- losses --------------------------------------------------------------------------- */

static void emit_losses(emitter *e) {
  const ae_model *m = e->p->m;
  OUT("\n/* ---- the loss: %d term%s, each logged apart; with backward set it also seeds the gradients */\n",
      m->losses.len, m->losses.len == 1 ? "" : "s");
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    if (ae_loss_on_classes(t->kind) && t->n_weights) {
      OUT("static const aert_real class_weights_%d[%d] = {", i, t->n_weights);
      for (int j = 0; j < t->n_weights; j++) OUT("%s%.9g", j ? ", " : "", t->class_weights[j]);
      OUT("};\n");
    }
    if (ae_loss_on_classes(t->kind) && t->auto_weights) {
      OUT("/* weights = auto: set by the trainer from the class frequencies (aert_model.set_class_weights) */\n");
      OUT("static aert_real class_weights_%d[%d] = {", i, m->n_classes);
      for (int j = 0; j < m->n_classes; j++) OUT("%s1", j ? ", " : "");
      OUT("};\n");
    }
  }
  OUT("static aert_real compute_loss(const run *r, aert_losses *out, int backward) {\n  aert_real total = 0, t;\n");
  OUT("  double *denom = out ? shard.denom : (double[%d]){0};   /* each term's normaliser on this rank */\n", m->losses.len ? m->losses.len : 1);
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    long per = t->a ? elems(t->a) : 0;   /* values per example */
    const char *n = batch_of(e, per), *denom = t->reduce_sum ? "AEC_BATCH" : n;
    const char *a = t->a ? val(e, t->a) : "", *da = t->a ? ae_sprintf(e->a, "backward ? %s : NULL", grad(e, t->a)) : "";
    const char *b = t->b ? val(e, t->b) : "", *db = t->b ? ae_sprintf(e->a, "backward ? %s : NULL", grad(e, t->b)) : "";
    OUT("  /* %s:%d: %g * %s */\n", t->loc.src->path, t->loc.line, t->weight, ae_loss_name(t->kind));
    switch (t->kind) {
    case LOSS_MSE: OUT("  t = aert_loss_mse(%s, %s, %s, %s, %s, %s, %.9g);\n", a, b, da, db, n, denom, t->weight); break;
    case LOSS_BCE: OUT("  t = aert_loss_bce(%s, %s, %s, %s, %s, %.9g);\n", a, b, da, n, denom, t->weight); break;
    case LOSS_SOFTMAX_XENT: case LOSS_FOCAL: {
      int c = m->n_classes;
      OUT("  t = aert_loss_focal(%s, %s, %s, %s, %d, %s, %.9g, %d, AEC_BATCH, %.9g, %s, &denom[%d], shard.global_denom[%d]);\n", a, b,
          da, batch_of(e, per / c), c, t->n_weights || t->auto_weights ? ae_sprintf(e->a, "class_weights_%d", i) : "NULL",
          t->kind == LOSS_FOCAL ? t->gamma : 0.0, t->reduce_sum, t->weight, buf(e, &e->p->rowtmp), i, i);
      break;
    }
    case LOSS_DICE: case LOSS_JACCARD: {
      int c = m->n_classes;
      OUT("  t = aert_loss_overlap(%s, %s, %s, %s, %d, %s, %d, %.9g, %.9g, %s);\n", a, b, da, batch_of(e, per / c), c,
          t->n_weights || t->auto_weights ? ae_sprintf(e->a, "class_weights_%d", i) : "NULL", t->kind == LOSS_JACCARD,
          t->smooth, t->weight, buf(e, &e->p->rowtmp));
      break;
    }
    case LOSS_L1: OUT("  t = aert_loss_l1(%s, %s, %s, AEC_BATCH, %.9g);\n", a, da, n, t->weight); break;
    case LOSS_KL_SPARSITY: OUT("  t = aert_loss_kl_sparsity(%s, %s, AEC_BATCH, %ld, %.9g, %.9g);\n", a, da, per, t->rho, t->weight); break;
    case LOSS_KL_NORMAL: OUT("  t = aert_loss_kl_normal(%s, %s, %s, %s, %s, AEC_BATCH, %.9g);\n", a, b, da, db, n, t->weight); break;
    case LOSS_L2:
      OUT("  t = 0;\n");
      for (int j = 0; j < e->p->params.len; j++) {
        const ae_tensor *w = e->p->params.items[j];
        if (w->is_weight && !w->frozen)
          OUT("  t += aert_loss_l2(%s, backward ? %s : NULL, %ld, %.9g);\n", pval(e, w), pgrad(e, w), w->size, t->weight);
      }
      break;
    default: break;
    }
    if (t->kind != LOSS_SOFTMAX_XENT && t->kind != LOSS_FOCAL)   /* a normaliser fixed by the shapes (L2: the same on every rank) */
      OUT("  denom[%d] = %s;\n", i, t->kind == LOSS_MSE || t->kind == LOSS_BCE ? denom : t->kind == LOSS_L2 ? "1" : "AEC_BATCH");
    OUT("  if (out) out->term[%d] = t;\n  total += %.9g * t;\n", i, t->weight);
  }
  OUT("  if (out) out->total = total;\n  return total;\n}\n");
}

/* ---- the model: tables, drivers, descriptor ----------------------------------------- */

static void emit_params(emitter *e) {
  static const char *const inits[] = {"AERT_INIT_ZEROS", "AERT_INIT_ONES", "AERT_INIT_HE_NORMAL", "AERT_INIT_GLOROT_UNIFORM"};
  OUT("\n/* ---- parameters: %d tensors in one arena of %ld floats */\nstatic const aert_param params[] = {\n",
      e->p->params.len, e->p->param_floats);
  for (int i = 0; i < e->p->params.len; i++) {
    const ae_tensor *t = e->p->params.items[i];
    OUT("  {\"%s\", %d, {", t->name, t->rank);
    for (int j = 0; j < t->rank; j++) OUT("%s%d", j ? ", " : "", t->shape[j]);
    OUT("}, %ld, %ld, %s, %d, %d, %d, ", t->size, t->offset, inits[t->init], t->fan_in, t->fan_out, t->frozen);
    if (t->init_from) OUT("\"%s\", \"%s\"},\n", t->init_from, t->init_name);
    else OUT("NULL, NULL},\n");
  }
  OUT("};\n\n/* Each tensor's offset in the parameters P (and its gradient's in G), by its name. */\nenum {\n");
  for (int i = 0; i < e->p->params.len; i++) {
    const ae_tensor *t = e->p->params.items[i];
    OUT("  %s = %ld,\n", e->param_ids[i], t->offset);
  }
  OUT("};\n");
}

/* The C names of the parameter tensors' offsets: "e1.1.w" is e1_1_w; one that another
 * tensor's name already took gets its index appended. */
static void name_params(emitter *e) {
  int n = e->p->params.len;
  e->param_ids = ae_alloc(e->a, sizeof(char *) * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    const char *id = ae_c_name(e->a, ((const ae_tensor *)e->p->params.items[i])->name);
    for (int j = 0; j < i; j++)
      if (strcmp(e->param_ids[j], id) == 0) { id = ae_sprintf(e->a, "%s_%d", id, i); break; }
    e->param_ids[i] = id;
  }
}

/* Marks in down[] the kernels that depend on the latent; false when the output also
 * depends on other values (a U-Net's skips): then the model has no decoder alone. */
static bool downstream_of_latent(const ae_program *p, bool *down) {
  const ae_node *lat = p->m->latent ? p->root[p->m->latent->id] : NULL;
  if (!lat || lat->op == OP_INPUT) return false;
  bool *val = calloc((size_t)p->n_nodes, sizeof *val);   /* values computable from the latent alone */
  if (!val) return false;
  val[lat->id] = true;
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    bool any = false, all = true;
    for (int j = 0; j < k->src.len; j++) {
      bool v = val[p->root[((ae_view *)k->src.items[j])->node->id]->id];
      any = any || v;
      all = all && v;
    }
    down[i] = any;
    if (any && all) val[k->out->id] = true;
  }
  bool ok = val[p->root[p->m->output->id]->id];
  for (int i = 0; i < p->kernels.len && ok; i++)
    if (down[i] && !val[((ae_kernel *)p->kernels.items[i])->out->id]) ok = false;
  free(val);
  return ok;
}

/* The decoder alone: the latent in, every kernel downstream of it, in evaluation mode. */
static void emit_decode(emitter *e, const char **names) {
  const ae_program *p = e->p;
  bool *down = calloc((size_t)p->kernels.len + 1, sizeof *down);
  if (!down || !downstream_of_latent(p, down)) { free(down); return; }
  e->has_decode = true;
  const ae_node *lat = p->root[p->m->latent->id];
  OUT("/* The decoder alone: a batch of latents in, the output where model_output points. */\n");
  bool any = false;
  for (int i = 0; i < p->kernels.len; i++) any = any || down[i];
  OUT("static void model_decode(const aert_real *P, aert_real *A, const aert_real *Z) {\n");
  if (any) OUT("  const run r = place(P, NULL, A, NULL, NULL, 0, 0, 0);\n");
  else OUT("  (void)P;  /* the output is the latent itself (or a view of it): no layer runs */\n");
  OUT("  memcpy(A + %ld, Z, sizeof(aert_real) * %s);\n", p->val[lat->id].off, batch_of(e, elems(p->m->latent)));
  for (int i = 0; i < p->kernels.len; i++)
    if (down[i]) OUT("  %s_forward(&r);\n", names[i]);
  OUT("}\n\n");
  free(down);
}

static void emit_drivers(emitter *e, const char **names) {
  const ae_program *p = e->p;
  int K = p->kernels.len;
  OUT("\n/* Per-kernel timing (`train --profile`, bench/): while the runtime sets profiling, each\n"
      " * call adds its milliseconds to profile_ms, forward and backward; entry %d is the loss.\n"
      " * Off, it costs one predictable branch per kernel call. */\n"
      "static int profiling;\nstatic double profile_ms[%d][2];\n"
      "#define PROFILED(k, dir, call) \\\n"
      "  do { double t0_ = profiling ? omp_get_wtime() : 0; call; if (profiling) profile_ms[k][dir] += 1e3 * (omp_get_wtime() - t0_); } while (0)\n",
      K, K + 1);
  OUT("\nstatic aert_real model_forward(const aert_real *P, aert_real *A, const aert_real *X, const aert_real *T, int training,\n"
      "                           uint64_t seed, aert_losses *losses) {\n  const run r = place(P, NULL, A, X, T, seed, training, shard.first);\n");
  int i = 0;
  for (; i < p->steps.len; i++) {   /* the forward steps, then the loss */
    const ae_step *st = p->steps.items[i];
    if (st->kind == STEP_FORWARD) OUT("  PROFILED(%d, 0, %s_forward(&r));\n", st->k->id, names[st->k->id]);
    if (st->kind != STEP_LOSS) continue;
    OUT("  aert_real loss;\n  PROFILED(%d, 0, loss = compute_loss(&r, losses, 0));\n  return loss;\n}\n\n", K);
    break;
  }
  OUT("/* Gradients accumulate (+=) into buffers zeroed just before their first use; the input\n"
      " * gradient of a conv that is the first to touch its source's stores it instead, unzeroed. */\n");
  OUT("static void model_backward(const aert_real *P, aert_real *G, aert_real *A, const aert_real *X, const aert_real *T, uint64_t seed) {\n"
      "  const run r = place(P, G, A, X, T, seed, 1, shard.first);\n");
  for (i++; i < p->steps.len; i++) {   /* the backward steps: a kernel's run in its one function */
    const ae_step *st = p->steps.items[i], *prev = p->steps.items[i - 1];
    if (st->kind == STEP_ZERO_PARAM_GRADS) OUT("  memset(G, 0, sizeof(aert_real) * %ld);\n", p->param_floats);
    else if (st->kind == STEP_ZERO && zero_needed(e, st->buf))
      OUT("  memset(r.%s, 0, sizeof(aert_real) * %ld);\n", buf_name(e, st->buf), st->buf->size);
    else if (st->kind == STEP_LOSS_GRAD) OUT("  PROFILED(%d, 1, compute_loss(&r, NULL, 1));\n", K);
    else if (st->k && st->k != prev->k) OUT("  PROFILED(%d, 1, %s_backward(&r));\n", st->k->id, names[st->k->id]);
  }
  OUT("}\n\n");
  emit_decode(e, names);
  const ae_node *out = p->m->output, *lat = p->m->latent;
  OUT("static const aert_real *model_output(const aert_real *A) { return A + %ld; }\n", p->val[p->root[out->id]->id].off);
  if (lat && p->root[lat->id]->op != OP_INPUT)
    OUT("static const aert_real *model_latent(const aert_real *A) { return A + %ld; }\n", p->val[p->root[lat->id]->id].off);
  else OUT("static const aert_real *model_latent(const aert_real *A) { (void)A; return NULL; }\n");
}

static void emit_cstr(emitter *e, const char *s) {
  if (!s) { OUT("NULL"); return; }
  fputc('"', e->o);
  for (; *s; s++) { if (*s == '"' || *s == '\\') fputc('\\', e->o); fputc(*s, e->o); }
  fputc('"', e->o);
}

/* The inference graph for exporters (aert_layer in runtime/aert.h): one row per node. */
static void emit_layers(emitter *e) {
  const ae_model *m = e->p->m;
  OUT("/* the inference graph: op, parameters, inputs, shape, k, stride, same, alpha, bilinear */\n"
      "static const aert_layer graph[%d] = {\n", m->nodes.len);
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    OUT("  {AERT_L_%s, ", ae_op_info_of(n->op)->graph_op);
    emit_cstr(e, n->n_params ? n->name : NULL);
    OUT(", %d, {", n->in.len < 8 ? n->in.len : 8);
    for (int j = 0; j < n->in.len && j < 8; j++) OUT("%s%d", j ? ", " : "", ((ae_node *)n->in.items[j])->id);
    OUT("}, %d, {", n->shape.rank);
    for (int j = 0; j < n->shape.rank; j++) OUT("%s%d", j ? ", " : "", n->shape.d[j]);
    OUT("}, %d, %d, %d, %.9g, %d},\n", n->op == OP_UPSAMPLE ? n->factor : n->k, n->stride, n->pad_same,
        n->op == OP_BATCHNORM ? n->eps : n->alpha, n->bilinear);
  }
  OUT("};\n\n");
}

/* The settings that steer a run (Nesterov, plateau, warmup, clip, accumulate, stop), named
 * and only when given, so that a spec without them generates the same descriptor as before. */
static void emit_steering(emitter *e, const ae_optimizer *o) {
  if (o->nesterov) OUT(",\n             .nesterov = 1");
  if (o->schedule == SCHED_PLATEAU) OUT(",\n             .plateau_factor = %.9g, .plateau_patience = %d", o->factor, o->patience);
  if (o->warmup_steps || o->warmup_epochs)
    OUT(",\n             .warmup_steps = %d, .warmup_epochs = %d", o->warmup_steps, o->warmup_epochs);
  if (o->clip > 0) OUT(",\n             .clip_norm = %.9g", o->clip);
  if (o->accumulate > 1) OUT(",\n             .accumulate = %d", o->accumulate);
  if (o->stop_patience) OUT(",\n             .stop_patience = %d, .stop_min_delta = %.9g", o->stop_patience, o->stop_min_delta);
}

static void emit_descriptor(emitter *e, const char *hash) {
  const ae_model *m = e->p->m;
  const ae_data *d = &m->data;
  static const char *const targets[] = {"AERT_TARGET_INPUT", "AERT_TARGET_IMAGE", "AERT_TARGET_CLASSES"};
  const char *opt = ae_optimizers.c_enums[m->opt.kind], *sched = ae_schedules.c_enums[m->opt.schedule];
  const char *src = ae_sources.c_enums[d->source];
  const ae_node *in = m->input, *t = m->target;
  OUT("\n#ifndef AERT_DOUBLE  /* a gradient check compiles this file in double, without the descriptor */\n");
  int auto_w = -1;   /* the first term with weights = auto; the trainer's weights go to every such term */
  for (int i = m->losses.len - 1; i >= 0; i--)
    if (((ae_loss_term *)m->losses.items[i])->auto_weights) auto_w = i;
  if (auto_w >= 0) {
    OUT("static void model_set_class_weights(const float *w) {\n");
    for (int i = auto_w; i < m->losses.len; i++)
      if (((ae_loss_term *)m->losses.items[i])->auto_weights)
        OUT("  for (int c = 0; c < %d; c++) class_weights_%d[c] = w[c];\n", m->n_classes, i);
    OUT("}\n\n");
  }
  int K = e->p->kernels.len;
  OUT("static const char *const timed_names[%d] = {", K + 1);
  for (int i = 0; i < K; i++) OUT("\"%s\", ", ae_kernel_name(e->a, e->p->kernels.items[i]));
  OUT("\"loss\"};\nstatic const double timed_flops[%d][2] = {", K + 1);
  for (int i = 0; i < K; i++) {
    ae_cost c = ae_kernel_cost(e->p, e->p->kernels.items[i]);
    OUT("{%.0f, %.0f}, ", c.flops[0], c.flops[1]);
  }
  OUT("{0, 0}};\n\n");
  emit_layers(e);
  OUT("const aert_model aec_model = {\n  .name = \"%s\",\n  .spec_file = ", m->name);
  emit_cstr(e, m->src->path);
  OUT(",\n  .spec_hash = \"%s\",\n  .batch = %d,\n  .in_rank = %d, .in_shape = {", hash, e->p->batch, in->shape.rank);
  for (int i = 0; i < in->shape.rank; i++) OUT("%s%d", i ? ", " : "", in->shape.d[i]);
  OUT("}, .in_size = %ld,\n  .target_kind = %s,\n", elems(in), targets[m->target_kind]);
  if (t) {
    OUT("  .target_rank = %d, .target_shape = {", t->shape.rank);
    for (int i = 0; i < t->shape.rank; i++) OUT("%s%d", i ? ", " : "", t->shape.d[i]);
    OUT("}, .target_size = %ld,\n", elems(t));
  }
  OUT("  .out_size = %ld, .latent_size = %ld,\n", elems(m->output), m->latent ? elems(m->latent) : 0L);
  OUT("  .n_classes = %d, .ignore_label = %d,\n", m->n_classes, m->ignore_label);
  if (m->n_classes) {
    OUT("  .class_ids = {");
    for (int i = 0; i < m->n_classes; i++) OUT("%s%d", i ? ", " : "", m->class_ids[i]);
    OUT("},\n  .class_names = {");
    for (int i = 0; i < m->n_classes; i++) OUT("%s\"%s\"", i ? ", " : "", m->class_names[i]);
    OUT("},\n");
  }
  OUT("  .n_loss_terms = %d, .loss_term_names = {", m->losses.len);
  for (int i = 0; i < m->losses.len; i++) OUT("%s\"%s\"", i ? ", " : "", ae_loss_name(((ae_loss_term *)m->losses.items[i])->kind));
  OUT("},\n  .n_params = %d, .params = params, .param_floats = %ld, .arena_floats = %ld,\n", e->p->params.len,
      e->p->param_floats, e->p->arena_floats);
  OUT("  .optim = {%s, %.9g, %.9g, %.9g, %.9g, %.9g, %.9g, %s, %.9g, %d, %.9g", opt, m->opt.lr, m->opt.momentum,
      m->opt.beta1, m->opt.beta2, m->opt.eps, m->opt.weight_decay, sched, m->opt.gamma, m->opt.every, m->opt.min_lr);
  emit_steering(e, &m->opt);
  OUT("},\n  .epochs = %d,\n", m->epochs);
  OUT("  .data = {.kind = %s, .dir = ", src);
  emit_cstr(e, d->dir);
  OUT(", .train_images = "); emit_cstr(e, d->train);
  OUT(", .train_labels = "); emit_cstr(e, d->train_labels);
  OUT(",\n           .test_images = "); emit_cstr(e, d->test);
  OUT(", .test_labels = "); emit_cstr(e, d->test_labels);
  OUT(",\n           .validation = %.9g, .scale = %.9g, .offset = %.9g, .shift = %.9g, .rotate = %.9g, .zoom = %.9g,"
      " .flip_h = %d, .flip_v = %d, .patch = %d, .patches_per_tile = %d,\n           .standardize = %d, .tiles = %d, .tile_size = %d",
      d->validation, d->scale, d->offset, d->shift, d->rotate, d->zoom, d->flip_h, d->flip_v, d->patch, d->patches_per_tile,
      d->standardize, d->tiles, d->tile_size);
  if (d->layers.len) {
    OUT(",\n           .n_layers = %d, .layers = {", d->layers.len);
    for (int i = 0; i < d->layers.len; i++) { OUT("%s", i ? ", " : ""); emit_cstr(e, d->layers.items[i]); }
    OUT("}");
  }
  if (d->label_layer) { OUT(", .label_layer = "); emit_cstr(e, d->label_layer); }
  OUT("},\n");
  OUT("  .forward = model_forward, .backward = model_backward, .output = model_output, .latent = model_latent,\n");
  for (int i = 0; i < m->nodes.len; i++) {   /* the denoising report's noise: the first on the input or a view of it */
    const ae_node *n = m->nodes.items[i], *x = n->in.len ? n->in.items[0] : NULL;
    while (x && (ae_op_info_of(x->op)->traits & AE_OP_VIEW)) x = x->in.items[0];
    if (n->op == OP_NOISE && x->op == OP_INPUT) {
      OUT("  .input_noise_stddev = %.9g, .input_noise_lo = %.9g, .input_noise_hi = %.9g,\n", n->stddev, n->lo, n->hi);
      break;
    }
  }
  if (e->has_decode) OUT("  .decode = model_decode,\n");
  OUT("  .n_timed = %d, .timed_names = timed_names, .timed_flops = timed_flops, .profile_ms = profile_ms, .profiling = &profiling,\n", K + 1);
  if (auto_w >= 0) OUT("  .set_class_weights = model_set_class_weights,\n");
  OUT("  .n_graph = %d, .graph = graph, .output_layer = %d, .latent_layer = %d,\n", m->nodes.len, m->output->id,
      m->latent ? m->latent->id : -1);
  OUT("  .spec_batch = %d, .ranks = %d, .shard = &shard, .loss_term_weight = {", e->p->batch * e->p->ranks, e->p->ranks);
  for (int i = 0; i < m->losses.len; i++) OUT("%s%.9g", i ? ", " : "", ((ae_loss_term *)m->losses.items[i])->weight);
  OUT("},\n");
  OUT("};\n");
  OUT("\n#ifndef AEC_NO_MAIN\nint main(int argc, char **argv) {\n  aert_prefer_passive_threads(argv);\n  return aert_main(&aec_model, argc, argv);\n}\n#endif\n#endif\n");
}

static int by_offset(const void *x, const void *y) {
  const ae_named_buffer *a = x, *b = y;
  if (a->b->off != b->b->off) return a->b->off < b->b->off ? -1 : 1;
  return (a->b->first > b->b->first) - (a->b->first < b->b->first);
}

/* The run a kernel sees: the parameters, the arena and a pointer per buffer of the arena
 * under its spec name; place() is the layout table, one row per buffer in offset order. */
static void emit_run(emitter *e) {
  const ae_program *p = e->p;
  int K = p->kernels.len, width = 8;
  ae_named_buffer *rows = ae_alloc(e->a, sizeof *rows * (size_t)(e->n_bufs + 1));
  memcpy(rows, e->bufs, sizeof *rows * (size_t)e->n_bufs);
  qsort(rows, (size_t)e->n_bufs, sizeof *rows, by_offset);
  for (int i = 0; i < e->n_bufs; i++)
    if ((int)strlen(rows[i].ident) > width) width = (int)strlen(rows[i].ident);
  OUT("\n/* ---- the arena: %ld floats (%.1f MiB) of activations, their gradients (d_) and scratch.\n"
      " * Each buffer lives over a range of steps: 0-%d the forward kernels, %d the loss, %d-%d the\n"
      " * backward kernels in reverse, %d after the step (the output and latent the runtime reads);\n"
      " * buffers whose lives do not overlap share memory. `aec dump --stage mem` prints the same. */\n",
      p->arena_floats, p->arena_floats * 4.0 / 1048576, K - 1, K, K + 1, 2 * K, 2 * K + 1);
  OUT("typedef struct {\n  const aert_real *P;  /* parameters */\n  aert_real *G;        /* parameter gradients */\n"
      "  aert_real *A;        /* the arena; the buffers below point into it */\n  const aert_real *X, *T;\n"
      "  uint64_t seed;\n  int training;\n  uint64_t first;      /* the global index of example 0 (shard.first) */\n");
  for (int i = 0, col = 0; i < e->n_bufs; i++) {
    int len = (int)strlen(e->bufs[i].ident) + 3;
    if (col == 0) col = OUT("  aert_real");
    else if (col + len > 100) { OUT(";\n"); col = OUT("  aert_real"); }
    else col += OUT(",");
    col += OUT(" *%s", e->bufs[i].ident);
    if (i + 1 == e->n_bufs) OUT(";\n");
  }
  OUT("} run;\n\n/* Data-parallel training: the rank's place in the global batch and its loss normalisers\n"
      " * (aert.h); all zero in one process. */\nstatic aert_shard shard;\n");
  OUT("\nstatic run place(const aert_real *P, aert_real *G, aert_real *A, const aert_real *X, const aert_real *T,\n"
      "                 uint64_t seed, int training, uint64_t first) {\n  return (run){\n    P, G, A, X, T, seed, training, first,\n");
  OUT("    /* %-*s    offset        floats   steps   what */\n", width, "buffer");
  for (int i = 0; i < e->n_bufs; i++) {
    const ae_named_buffer *b = &rows[i];
    char sh[48] = "";
    if (b->kind == BUF_VALUE || b->kind == BUF_GRAD) ae_shape_str(b->k->out->shape, sh);
    OUT("    .%-*s = A + %-11s /* %10ld  %3d-%-3d  %s%s%s */\n", width, b->ident, ae_sprintf(e->a, "%ld,", b->b->off),
        b->b->size, b->b->first, b->b->last, b->label, sh[0] ? " " : "", sh);
  }
  OUT("  };\n}\n");
}

static void emit_model_c(emitter *e, const char *hash) {
  const ae_program *p = e->p;
  e->bufs = ae_plan_buffers(e->a, p, &e->n_bufs);
  name_params(e);
  const ae_model *m = p->m;
  OUT("/* model.c - generated by aec from %s; do not edit, change the spec instead.\n", m->src->path);
  OUT(" * Model %s at batch %d: %d kernels, %ld parameter floats, an arena of %ld floats (%.1f MiB).\n",
      m->name, p->batch, p->kernels.len, p->param_floats, p->arena_floats, p->arena_floats * 4.0 / 1048576);
  OUT(" * Tensors are NHWC; conv kernels HWIO [k, k, in, out], transposed conv [in, k, k, out],\n"
      " * dense [in, out]. Forward and backward of each kernel sit side by side; backward\n"
      " * functions accumulate (+=) into gradients. `aec dump --stage mem` prints the arena. */\n");
  OUT("#include <string.h>\n\n#include \"aert_kernels.h\"\n#include \"model.h\"\n\n");
  const ae_node *t = m->target;
  OUT("/* The sizes (model.h has them too): every size below that grows with the batch is written\n"
      " * AEC_BATCH * n, n per image. */\n#define AEC_BATCH %d\n#define AEC_IN_SIZE %ld\n#define AEC_TARGET_SIZE %ld\n#define AEC_N_CLASSES %d\n"
      "#define AEC_PARAM_FLOATS %ldL\n#define AEC_ARENA_FLOATS %ldL\n", p->batch, elems(m->input), t ? elems(t) : 0L,
      m->n_classes, p->param_floats, p->arena_floats);
  emit_run(e);
  emit_params(e);
  const char **names = ae_alloc(e->a, sizeof(char *) * (size_t)(p->kernels.len + 1));
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    names[i] = ae_kernel_name(e->a, k);
    if (e->kernel_at) e->kernel_at[i] = ftell(e->o);
    ae_emit_provenance(e->o, e->a, e->p, k);
    switch (k->kind) {
    case K_CONV: case K_CONV_T: emit_conv(e, k, names[i]); break;
    case K_DENSE: emit_dense(e, k, names[i]); break;
    case K_CONCAT: case K_ADD: emit_join(e, k, names[i]); break;
    default: emit_simple(e, k, names[i]);
    }
  }
  if (e->kernel_at) e->kernel_at[p->kernels.len] = ftell(e->o);
  emit_losses(e);
  emit_drivers(e, names);
  emit_descriptor(e, hash);
}

static FILE *open_out(const char *dir, const char *file, char **path) {
  *path = malloc(strlen(dir) + strlen(file) + 2);
  sprintf(*path, "%s/%s", dir, file);
  FILE *f = fopen(*path, "w");
  if (!f) fprintf(stderr, "aec: cannot write '%s': %s\n", *path, strerror(errno));
  return f;
}

static bool close_out(FILE *f, char *path) {
  bool ok = !ferror(f);
  ok = fclose(f) == 0 && ok;
  if (!ok) fprintf(stderr, "aec: error writing '%s'\n", path);
  free(path);
  return ok;
}

static void emit_manifest(emitter *e, const char *hash) {
  const ae_program *p = e->p;
  OUT("{\n  \"model\": \"%s\",\n  \"spec\": \"%s\",\n  \"spec_hash\": \"%s\",\n  \"batch\": %d,\n", p->m->name, p->m->src->path, hash, p->batch);
  OUT("  \"precision\": \"%s\",\n  \"gemm_library\": \"%s\",\n", ae_precision_names[p->precision], ae_gemm_names[p->gemm]);   /* the CUDA target's GEMMs */
  OUT("  \"param_floats\": %ld,\n  \"arena_floats\": %ld,\n  \"params\": [\n", p->param_floats, p->arena_floats);
  for (int i = 0; i < p->params.len; i++) {
    const ae_tensor *t = p->params.items[i];
    OUT("    {\"name\": \"%s\", \"shape\": [", t->name);
    for (int j = 0; j < t->rank; j++) OUT("%s%d", j ? ", " : "", t->shape[j]);
    OUT("], \"offset\": %ld, \"frozen\": %s}%s\n", t->offset, t->frozen ? "true" : "false", i + 1 < p->params.len ? "," : "");
  }
  OUT("  ],\n  \"kernels\": [\n");
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    ae_cost c = ae_kernel_cost(p, k);
    char sh[48];
    OUT("    {\"name\": \"%s\", \"line\": %d, \"out\": \"%s\", \"flops_per_example\": %.0f, \"flops\": [%.0f, %.0f], \"bytes\": [%.0f, %.0f]",
        ae_kernel_name(e->a, k), k->node->loc.line, ae_shape_str(k->out->shape, sh), k->node->flops, c.flops[0], c.flops[1],
        c.bytes[0], c.bytes[1]);
    if (k->kind == K_CONV) {   /* the forward GEMM: rows of the chunk, output channels, window length */
      window w = conv_window(k);
      long rows = (conv_direct(k) ? p->batch : k->conv.chunk) * (long)w.rows_h * w.rows_w;
      OUT(", \"gemm\": [%ld, %d, %d]", rows, k->node->units, w.k * w.k * w.tc);
    }
    OUT("}%s\n", i + 1 < p->kernels.len ? "," : "");
  }
  int nb;
  const ae_named_buffer *bufs = ae_plan_buffers(e->a, p, &nb);
  OUT("  ],\n  \"buffers\": [\n");
  for (int i = 0; i < nb; i++)
    OUT("    {\"name\": \"%s\", \"offset\": %ld, \"floats\": %ld, \"first\": %d, \"last\": %d}%s\n", bufs[i].name, bufs[i].b->off,
        bufs[i].b->size, bufs[i].b->first, bufs[i].b->last, i + 1 < nb ? "," : "");
  OUT("  ]\n}\n");
}

static void emit_model_h(emitter *e) {
  const ae_program *p = e->p;
  char *up = ae_strdup(e->a, ae_c_name(e->a, p->m->name));
  for (char *c = up; *c; c++) if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
  OUT("/* model.h - generated by aec from %s: the fixed sizes of model %s. */\n", p->m->src->path, p->m->name);
  OUT("#ifndef AEC_MODEL_%s_H\n#define AEC_MODEL_%s_H\n\n#include \"aert.h\"\n\n", up, up);
  OUT("#define %s_BATCH %d\n#define %s_IN_SIZE %ld\n#define %s_OUT_SIZE %ld\n#define %s_LATENT_SIZE %ld\n", up, p->batch,
      up, elems(p->m->input), up, elems(p->m->output), up, p->m->latent ? elems(p->m->latent) : 0L);
  OUT("#define %s_PARAM_FLOATS %ldL\n#define %s_ARENA_FLOATS %ldL\n\n", up, p->param_floats, up, p->arena_floats);
  OUT("/* The model's descriptor: tables, sizes and entry points for the runtime. */\nextern const aert_model aec_model;\n\n#endif\n");
}

/* One generated file as text, through the same emitter that writes it. */
static char *emit_text(ae_arena *a, const ae_program *p, const char *hash, long *kernel_at, void (*emit)(emitter *, const char *)) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  emitter em = {a, p, f, false, kernel_at, NULL, 0, NULL};
  emit(&em, hash);
  if (fclose(f) != 0) { free(buf); return NULL; }
  char *text = ae_strndup(a, buf, len);
  free(buf);
  return text;
}

char *ae_emit_model_c_text(ae_arena *a, const ae_program *p, const char *hash, long *kernel_at) {
  return emit_text(a, p, hash, kernel_at, emit_model_c);
}

char *ae_emit_manifest_text(ae_arena *a, const ae_program *p, const char *hash) { return emit_text(a, p, hash, NULL, emit_manifest); }

bool ae_emit_c(ae_arena *a, const ae_program *p, const char *dir, const char *hash) {
  if (!ae_make_dir(dir)) { fprintf(stderr, "aec: cannot create '%s': %s\n", dir, strerror(errno)); return false; }
  const char *files[] = {"model.c", "model.h", "manifest.json", "model.mk"};
  for (int i = 0; i < 4; i++) {
    char *path;
    FILE *f = open_out(dir, files[i], &path);
    if (!f) { free(path); return false; }
    emitter em = {a, p, f, false, NULL, NULL, 0, NULL}, *e = &em;
    if (i == 0) emit_model_c(e, hash);
    else if (i == 1) emit_model_h(e);
    else if (i == 2) emit_manifest(e, hash);
    else OUT("# model.mk - generated by aec: builds bin/%s from the model.c beside this file.\n"
             "AEC_%s_DIR := $(dir $(lastword $(MAKEFILE_LIST)))\n"
             "bin/%s: $(AEC_%s_DIR)model.c build/libaert.a\n\t@mkdir -p bin\n"
             "\t$(CC) $(MODEL_CFLAGS) -Iruntime -I$(AEC_%s_DIR) -o $@ $< build/libaert.a $(RUNTIME_LIBS)\n",
             p->m->name, p->m->name, p->m->name, p->m->name, p->m->name);
    if (!close_out(f, path)) return false;
  }
  return true;
}
