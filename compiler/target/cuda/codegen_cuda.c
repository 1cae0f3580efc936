/* codegen_cuda.c - the CUDA target: writes generated/<model>/model.cu beside model.c. One
 * __global__ per fused step (a kernel's forward; its backward as the activation's
 * derivative, db, dW and a dX per source), every size a constant and the launch chosen
 * here; the kernels call the device code of runtime/aert_cuda_kernels.h as model.c calls
 * aert_kernels.h. The host side keeps the C target's aert_model descriptor (model.c,
 * compiled with AEC_NO_MAIN) and swaps in its forward and backward. */
#include "aec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ae_arena *a;
  const ae_program *p;
  FILE *o;
  const ae_named_buffer *bufs;
  int n_bufs;
  int n_slots;               /* the loss's double sums on the device */
  int *slot;                 /* per loss term: its first sum */
  int *cw_at;                /* per loss term: its class weights in r->cw, or -1 */
  int n_cw;                  /* floats of class weights */
  long *kernel_at;           /* where each kernel's text starts in model.cu (the loss's last), or NULL */
} emitter;

#define OUT(...) fprintf(e->o, __VA_ARGS__)

static long elems(const ae_node *n) { return ae_shape_elems(n->shape); }
static int channels(const ae_node *n) { return n->shape.rank ? n->shape.d[n->shape.rank - 1] : 1; }

/* ---- what the target has: every other op is refused by name and line (every loss is in) */

static const char *unsupported_kernel(const ae_kernel *k) {
  switch (k->kind) {
  case K_CONV_T: return k->src.len != 1 || ((ae_view *)k->src.items[0])->factor != 1 ? "conv_transpose of a folded input" : NULL;
  default: return NULL;
  }
}

bool ae_cuda_supported(ae_diag *d, const ae_program *p) {
  int before = d->errors;
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    const char *what = unsupported_kernel(k);
    if (what) ae_error(d, k->node->loc, "%s is not in the CUDA target yet", what);
  }
  if (p->ranks > 1) ae_error_noloc(d, p->m->src->path, "data-parallel training (--mpi) is not in the CUDA target yet");
  return d->errors == before;
}

/* ---- names and expressions ---------------------------------------------------------- */

static const char *buf_name(emitter *e, const ae_buffer *b) {
  for (int i = 0; i < e->n_bufs; i++)
    if (e->bufs[i].b == b) return e->bufs[i].ident;
  fprintf(stderr, "aec: internal error: a buffer at offset %ld is not in the plan\n", b->off);
  abort();
}
/* A node's value and gradient as device pointers of the run r. */
static const char *val(emitter *e, const ae_node *n) {
  const ae_node *root = e->p->root[n->id];
  if (root->op == OP_INPUT) return "r->X";
  if (root->op == OP_TARGET) return "r->T";
  return ae_sprintf(e->a, "r->%s", buf_name(e, &e->p->val[root->id]));
}
static bool has_grad(emitter *e, const ae_node *n) { return ae_value_has_grad(e->p, n); }
/* Whether the steps (steps.c) give kernel k a step of that kind. */
static bool has_step(emitter *e, const ae_kernel *k, ae_step_kind kind) { return ae_kernel_step(e->p, k, kind) != NULL; }
static const char *grad(emitter *e, const ae_node *n) {
  return ae_sprintf(e->a, "r->%s", buf_name(e, &e->p->grad[e->p->root[n->id]->id]));
}
static const char *pval(emitter *e, const ae_tensor *t) { return ae_sprintf(e->a, "r->P + %ld", t->offset); }
static const char *pgrad(emitter *e, const ae_tensor *t) { return ae_sprintf(e->a, "r->G + %ld", t->offset); }

/* A float literal of C: 1.0f, 1e-05f, -INFINITY. */
static const char *flt(emitter *e, double v) {
  if (isinf(v)) return v < 0 ? "-INFINITY" : "INFINITY";
  char b[48];
  snprintf(b, sizeof b, "%.9g", v);
  return ae_sprintf(e->a, "%s%sf", b, strpbrk(b, ".e") ? "" : ".0");
}
static const char *act_enum(const ae_node *act) {
  const char *s = act ? ae_op_info_of(act->op)->act_enum : NULL;
  return s ? s : "AERT_ACT_LINEAR";
}
static double act_alpha(const ae_node *act) { return act ? act->alpha : 0; }
/* "x / f" and "x * f" without the parts that are 1. */
static const char *div_by(emitter *e, const char *x, int f) { return f == 1 ? x : ae_sprintf(e->a, "%s / %d", x, f); }
static int tile_for(long n) { return n >= 64 ? 64 : n >= 32 ? 32 : 16; }

/* ---- the launches: each kernel's grid beside it ------------------------------------- */

/* A GEMM kernel's launch: the comment above its __global__ and the launch line. */
typedef struct { long m, n, k; int bm, bn; } gemm_shape;
static gemm_shape gemm_of(long m, long n, long k) { return (gemm_shape){m, n, k, tile_for(m), tile_for(n)}; }
static const char *gemm_grid(emitter *e, gemm_shape g) {
  return ae_sprintf(e->a, "dim3(%ld, %ld)", (g.n + g.bn - 1) / g.bn, (g.m + g.bm - 1) / g.bm);
}
static void gemm_comment(emitter *e, const char *kname, const char *what, gemm_shape g) {
  OUT("/* %s: %s, a %ld x %ld x %ld GEMM; launch %ld x %ld blocks of 256 threads, %d x %d tiles */\n", kname, what, g.m, g.n,
      g.k, (g.n + g.bn - 1) / g.bn, (g.m + g.bm - 1) / g.bm, g.bm, g.bn);
}
static const char *gemm_call(emitter *e, gemm_shape g) {
  return ae_sprintf(e->a, "aecd_gemm<%ld, %ld, %ld, %d, %d>", g.m, g.n, g.k, g.bm, g.bn);
}
/* An elementwise kernel over n values, 4 per thread. */
static long ew_blocks(long n) { return (n + 1023) / 1024; }

#define GLOBAL "__global__ void AECD_BOUNDS "
#define CF "const float *__restrict__ "
#define F "float *__restrict__ "

/* The seed of a random kernel, as the C target draws it: (hash(seed + k), first * elems).
 * The step's seed is read on the device from the step block (r->seed), so that a captured
 * graph draws each step's numbers; SEEDED opens a random kernel's body with its own seed. */
static const char *seed_args(emitter *e, const ae_kernel *k) {
  return ae_sprintf(e->a, "r->seed, %d, r->first * %ldu", k->id, elems(k->out));
}
#define SEED_PARAMS "const uint64_t *step_seed, int k, uint64_t base"
#define SEEDED "uint64_t seed = aert_hash64(*step_seed + (uint64_t)k);\n    "

/* ---- dense ----------------------------------------------------------------------------- */

/* The backward steps every layer with weights shares: the activation's derivative in place
 * and the bias gradient over rows x cols of dy. */
static void emit_dact_db(emitter *e, const ae_kernel *k, const char *name, long rows, int cols) {
  long n = rows * cols;
  if (k->act && k->act->op != OP_LINEAR) {
    OUT("/* %s_dact: dy *= %s'(y) in place; launch %ld blocks of 256 */\n", name, ae_op_name(k->act->op), ew_blocks(n));
    OUT(GLOBAL "%s_dact(" F "dy, " CF "y) {\n  AECD_FOR(i, %ldL) dy[i] *= aecd_act_grad<%s>(y[i], %s);\n}\n", name, n, act_enum(k->act),
        flt(e, act_alpha(k->act)));
  }
  if (has_step(e, k, STEP_BIAS_GRAD)) {
    OUT("/* %s_db: db += the column sums of dy (%ld rows); launch %d blocks of 256 */\n", name, rows, (cols + 31) / 32);
    OUT(GLOBAL "%s_db(" CF "dy, float *db) {\n  aecd_col_sum<%ldL, %d>([=](long r, int c) { return (double)dy[r * %d + c]; }, db);\n}\n",
        name, rows, cols, cols);
  }
}

static void launch_dact_db(emitter *e, const ae_kernel *k, const char *name, long rows, int cols, const char *dy, const char *y) {
  if (k->act && k->act->op != OP_LINEAR)
    OUT("  AEC_LAUNCH(%s_dact, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s);\n", name, ew_blocks(rows * cols), dy, y);
  if (has_step(e, k, STEP_BIAS_GRAD)) OUT("  AEC_LAUNCH(%s_db, dim3(%d), AECD_THREADS, 0, r->stream, %s, %s);\n", name, (cols + 31) / 32, dy, pgrad(e, k->b));
}

/* The epilogue y = act(s + b) of a GEMM kernel writing rows of `cols` values. */
static const char *epilogue(emitter *e, const ae_kernel *k, int cols) {
  return ae_sprintf(e->a, "[=](int i, int j, float s) { y[(long)i * %d + j] = aecd_act<%s>(s%s, %s); }", cols, act_enum(k->act),
                    k->b ? " + b[j]" : "", flt(e, act_alpha(k->act)));
}

/* The drivers of a kernel that is one GEMM each way and reads one source x (dense,
 * conv_transpose): forward launches NAME_fwd; backward the activation's derivative and bias
 * gradient over rows x cols of dy, then NAME_dw and NAME_dx where the steps have them. */
/* The cuBLASLt epilogue of a dense layer's activation and bias; the activation stays for a
 * kernel of its own (*after) when no epilogue has it. */
static const char *lt_epilogue(const ae_kernel *k, bool *after) {
  bool relu = k->act && k->act->op == OP_RELU, linear = !k->act || k->act->op == OP_LINEAR;
  *after = !relu && !linear;
  if (relu) return k->b ? "CUBLASLT_EPILOGUE_RELU_BIAS" : "CUBLASLT_EPILOGUE_RELU";
  return k->b ? "CUBLASLT_EPILOGUE_BIAS" : "CUBLASLT_EPILOGUE_DEFAULT";
}

/* A dense layer's GEMMs by cuBLASLt under nvcc (AECD_LT): its plans (forward, and dW and dX
 * where the steps have them; the layouts in runtime/aert_cublaslt.h) and the forward driver;
 * its GEMM kernels under the emulator. */
static void emit_dense_lt(emitter *e, const ae_kernel *k, const char *name, const ae_node *x, gemm_shape f, bool dw, bool dx) {
  bool after;
  const char *epi = lt_epilogue(k, &after), *y = val(e, k->out);
  long n = f.m * f.n;
  OUT("\n#if AECD_LT\n/* %s_lt: cublasLtMatmul, %s, beside the GEMM kernels' steps */\n"
      "static aecd_lt_plan %s_lt = {%ld, %ld, %ld, CUBLAS_OP_N, CUBLAS_OP_N, %s, 0.0f, \"%s forward\"};\n", name, epi, name, f.n, f.m, f.k,
      epi, name);
  if (dw) OUT("static aecd_lt_plan %s_lt_dw = {%ld, %ld, %ld, CUBLAS_OP_N, CUBLAS_OP_T, CUBLASLT_EPILOGUE_DEFAULT, 1.0f, \"%s dW\"};\n", name, f.n,
              f.k, f.m, name);
  if (dx) OUT("static aecd_lt_plan %s_lt_dx = {%ld, %ld, %ld, CUBLAS_OP_T, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, 1.0f, \"%s dX\"};\n", name, f.k,
              f.m, f.n, name);
  if (after)
    OUT("/* %s_act: y = %s(y) in place, the activation no epilogue has; launch %ld blocks of 256 */\n"
        GLOBAL "%s_act(" F "y) {\n  AECD_FOR(i, %ldL) y[i] = aecd_act<%s>(y[i], %s);\n}\n", name, ae_op_name(k->act->op), ew_blocks(n), name, n,
        act_enum(k->act), flt(e, act_alpha(k->act)));
  OUT("#endif\n\nstatic void %s_forward(const run *r) {\n#if AECD_LT\n  aecd_lt_gemm(&%s_lt, %s, %s, %s, %s, r->stream);\n", name, name, pval(e, k->w),
      val(e, x), k->b ? pval(e, k->b) : "(const float *)NULL", y);
  if (after) OUT("  AEC_LAUNCH(%s_act, dim3(%ld), AECD_THREADS, 0, r->stream, %s);\n", name, ew_blocks(n), y);
  OUT("#else\n  AEC_LAUNCH(%s_fwd, %s, AECD_THREADS, 0, r->stream, %s, %s, %s, %s);\n#endif\n}\n", name, gemm_grid(e, f), val(e, x), pval(e, k->w),
      k->b ? pval(e, k->b) : "(const float *)NULL", y);
}

static void emit_gemm_drivers(emitter *e, const ae_kernel *k, const char *name, const ae_node *x, gemm_shape f, gemm_shape gw,
                              gemm_shape gx, long rows, int cols, bool bwd, bool dw, bool dx) {
  const char *y = val(e, k->out);
  bool lt = k->kind == K_DENSE && e->p->gemm == AE_GEMM_CUBLASLT;
  if (lt) emit_dense_lt(e, k, name, x, f, bwd && dw, bwd && dx);
  else
    OUT("\nstatic void %s_forward(const run *r) {\n  AEC_LAUNCH(%s_fwd, %s, AECD_THREADS, 0, r->stream, %s, %s, %s, %s);\n}\n", name, name,
        gemm_grid(e, f), val(e, x), pval(e, k->w), k->b ? pval(e, k->b) : "(const float *)NULL", y);
  if (!bwd) return;
  const char *dy = grad(e, k->out);
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  launch_dact_db(e, k, name, rows, cols, dy, y);
  if (lt && (dw || dx)) {
    OUT("#if AECD_LT\n");
    if (dw) OUT("  aecd_lt_gemm(&%s_lt_dw, %s, %s, (const float *)NULL, %s, r->stream);\n", name, dy, val(e, x), pgrad(e, k->w));
    if (dx) OUT("  aecd_lt_gemm(&%s_lt_dx, %s, %s, (const float *)NULL, %s, r->stream);\n", name, pval(e, k->w), dy, grad(e, x));
    OUT("#else\n");
  }
  if (dw) OUT("  AEC_LAUNCH(%s_dw, %s, AECD_THREADS, 0, r->stream, %s, %s, %s);\n", name, gemm_grid(e, gw), val(e, x), dy, pgrad(e, k->w));
  if (dx) OUT("  AEC_LAUNCH(%s_dx, %s, AECD_THREADS, 0, r->stream, %s, %s, %s);\n", name, gemm_grid(e, gx), dy, pval(e, k->w), grad(e, x));
  if (lt && (dw || dx)) OUT("#endif\n");
  OUT("}\n");
}

static void emit_dense(emitter *e, const ae_kernel *k, const char *name) {
  int B = e->p->batch, in = (int)elems(k->node->in.items[0]), out = k->node->units;
  const ae_node *x = ((ae_view *)k->src.items[0])->node;
  gemm_shape f = gemm_of(B, out, in);
  gemm_comment(e, ae_sprintf(e->a, "%s_fwd", name), ae_sprintf(e->a, "y = %s(x w%s)", ae_op_name(k->act ? k->act->op : OP_LINEAR),
                                                                 k->b ? " + b" : ""), f);
  OUT(GLOBAL "%s_fwd(" CF "x, " CF "w, " CF "b, " F "y) {\n", name);
  OUT("  %s([=](int i, int k) { return x[(long)i * %d + k]; }, [=](int k, int j) { return w[(long)k * %d + j]; },\n    %s);\n}\n",
      gemm_call(e, f), in, out, epilogue(e, k, out));
  bool bwd = ae_kernel_has_backward(e->p, k), dw = has_step(e, k, STEP_WEIGHT_GRAD), dx = has_step(e, k, STEP_INPUT_GRAD);
  if (bwd) emit_dact_db(e, k, name, B, out);
  gemm_shape gw = gemm_of(in, out, B), gx = gemm_of(B, in, out);
  if (dw) {
    gemm_comment(e, ae_sprintf(e->a, "%s_dw", name), "dw += x^T dy", gw);
    OUT(GLOBAL "%s_dw(" CF "x, " CF "dy, " F "dw) {\n", name);
    OUT("  %s([=](int i, int k) { return x[(long)k * %d + i]; }, [=](int k, int j) { return dy[(long)k * %d + j]; },\n"
        "    [=](int i, int j, float s) { dw[(long)i * %d + j] += s; });\n}\n", gemm_call(e, gw), in, out, out);
  }
  if (dx) {
    gemm_comment(e, ae_sprintf(e->a, "%s_dx", name), "dx += dy w^T", gx);
    OUT(GLOBAL "%s_dx(" CF "dy, " CF "w, " F "dx) {\n", name);
    OUT("  %s([=](int i, int k) { return dy[(long)i * %d + k]; }, [=](int k, int j) { return w[(long)j * %d + k]; },\n"
        "    [=](int i, int j, float s) { dx[(long)i * %d + j] += s; });\n}\n", gemm_call(e, gx), out, out, in);
  }
  emit_gemm_drivers(e, k, name, x, f, gw, gx, B, out, bwd, dw, dx);
}

/* ---- convolution as implicit GEMM ---------------------------------------------------
 * Rows are output pixels (n, oh, ow), columns output channels, the depth the window
 * (kh, kw, ci) over the stacked input: the sources at their channel offsets, each read
 * through its nearest upsample (pixel / factor), never copied. */
typedef struct { int ho, wo, h, w, c, k, s, pad, cout; } conv_geom;

static conv_geom conv_geom_of(const ae_kernel *k) {
  const ae_node *n = k->node, *x = n->in.items[0];
  return (conv_geom){n->shape.d[0], n->shape.d[1], x->shape.d[0], x->shape.d[1], x->shape.d[2], n->k, n->stride,
                     n->pad_same ? (n->k - 1) / 2 : 0, n->units};
}

/* "o * s - pad": where the window of output o starts, without the parts that do nothing. */
static const char *window_start(emitter *e, const char *o, int s, int pad) {
  const char *x = s == 1 ? o : ae_sprintf(e->a, "%s * %d", o, s);
  return pad ? ae_sprintf(e->a, "%s - %d", x, pad) : x;
}

/* NAME_in(sources, row, k): the stacked, padded input of the window, read in place. */
static void emit_conv_input(emitter *e, const ae_kernel *k, const char *name, conv_geom g) {
  OUT("__device__ __forceinline__ float %s_in(", name);
  for (int i = 0; i < k->src.len; i++) OUT("%s" CF "s%d", i ? ", " : "", i);
  OUT(", int row, int k) {\n  int n = row / %d, q = row %% %d, tap = k / %d, c = k %% %d;\n", g.ho * g.wo, g.ho * g.wo, g.c, g.c);
  OUT("  int ih = %s + tap / %d, iw = %s + tap %% %d;\n", window_start(e, ae_sprintf(e->a, "q / %d", g.wo), g.s, g.pad), g.k,
      window_start(e, ae_sprintf(e->a, "q %% %d", g.wo), g.s, g.pad), g.k);
  OUT("  if (ih < 0 || ih >= %d || iw < 0 || iw >= %d) return 0.0f;\n", g.h, g.w);
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    int f = v->factor, c = channels(v->node);
    bool last = i + 1 == k->src.len;
    const char *ch = v->ch_off ? ae_sprintf(e->a, "c - %d", v->ch_off) : "c";
    OUT("  %sreturn s%d[((long)n * %d + %s) * %ld + (long)%s * %d + %s];%s\n", last ? "" : ae_sprintf(e->a, "if (c < %d) ", v->ch_off + c),
        i, g.h / f, div_by(e, "ih", f), (long)(g.w / f) * c, div_by(e, "iw", f), c, ch,
        f > 1 ? ae_sprintf(e->a, "  /* %s upsampled x%d */", v->node->name ? v->node->name : "", f) : "");
  }
  OUT("}\n");
}

/* dX of source i: rows its pixels, columns its channels, the depth every stack pixel of its
 * upsampled block and every tap and output channel that reads it. */
static void emit_conv_dx(emitter *e, const ae_kernel *k, const char *name, conv_geom g, int i, gemm_shape *gx) {
  const ae_view *v = k->src.items[i];
  int f = v->factor, c = channels(v->node), sh = g.h / f, sw = g.w / f, win = g.k * g.k * g.cout;
  *gx = gemm_of((long)e->p->batch * sh * sw, c, (long)f * f * win);
  gemm_comment(e, ae_sprintf(e->a, "%s_dx%d", name, i), ae_sprintf(e->a, "the gradient of %s += the windows' dy w^T%s",
                                                                   v->node->name ? v->node->name : "x",
                                                                   f > 1 ? ae_sprintf(e->a, " over each %dx%d block", f, f) : ""), *gx);
  OUT(GLOBAL "%s_dx%d(" CF "dy, " CF "w, " F "dx) {\n  %s(\n    [=](int i, int k) {\n", name, i, gemm_call(e, *gx));
  OUT("      int n = i / %d, q = i %% %d, t = k %% %d, tap = t / %d, co = t %% %d;\n", sh * sw, sh * sw, win, g.cout, g.cout);
  if (f > 1) OUT("      int sub = k / %d;\n", win);
  const char *dh = f > 1 ? ae_sprintf(e->a, " + sub / %d", f) : "", *dw = f > 1 ? ae_sprintf(e->a, " + sub %% %d", f) : "";
  const char *pad = g.pad ? ae_sprintf(e->a, " + %d", g.pad) : "";
  OUT("      int th = q / %d%s%s%s - tap / %d, tw = q %% %d%s%s%s - tap %% %d;\n", sw, f > 1 ? ae_sprintf(e->a, " * %d", f) : "", dh, pad, g.k,
      sw, f > 1 ? ae_sprintf(e->a, " * %d", f) : "", dw, pad, g.k);
  if (g.s > 1) OUT("      if (th < 0 || tw < 0 || th %% %d || tw %% %d) return 0.0f;\n      th /= %d, tw /= %d;\n", g.s, g.s, g.s, g.s);
  else OUT("      if (th < 0 || tw < 0) return 0.0f;\n");
  OUT("      if (th >= %d || tw >= %d) return 0.0f;\n      return dy[(((long)n * %d + th) * %d + tw) * %d + co];\n    },\n", g.ho, g.wo,
      g.ho, g.wo, g.cout);
  OUT("    [=](int k, int j) { int t = k %% %d; return w[((long)(t / %d) * %d + %s) * %d + t %% %d]; },\n", win, g.cout, g.c,
      v->ch_off ? ae_sprintf(e->a, "%d + j", v->ch_off) : "j", g.cout, g.cout);
  OUT("    [=](int i, int j, float s) { dx[(long)i * %d + j] += s; });\n}\n", c);
}

static void emit_conv(emitter *e, const ae_kernel *k, const char *name) {
  conv_geom g = conv_geom_of(k);
  int B = e->p->batch, ns = k->src.len;
  long rows = (long)B * g.ho * g.wo, win = (long)g.k * g.k * g.c;
  emit_conv_input(e, k, name, g);
  const char *sp = "", *sa = "", *srcs = "";
  for (int i = 0; i < ns; i++) {
    sp = ae_sprintf(e->a, "%s" CF "s%d, ", sp, i);
    sa = ae_sprintf(e->a, "%ss%d, ", sa, i);
    srcs = ae_sprintf(e->a, "%s%s, ", srcs, val(e, ((ae_view *)k->src.items[i])->node));
  }
  gemm_shape f = gemm_of(rows, g.cout, win), gw = gemm_of(win, g.cout, rows);
  gemm_comment(e, ae_sprintf(e->a, "%s_fwd", name), ae_sprintf(e->a, "y = %s(conv %dx%d /%d + b), implicit", ae_op_name(k->act ? k->act->op : OP_LINEAR),
                                                                 g.k, g.k, g.s), f);
  OUT(GLOBAL "%s_fwd(%s" CF "w, " CF "b, " F "y) {\n", name, sp);
  OUT("  %s([=](int i, int k) { return %s_in(%si, k); }, [=](int k, int j) { return w[(long)k * %d + j]; },\n    %s);\n}\n",
      gemm_call(e, f), name, sa, g.cout, epilogue(e, k, g.cout));
  bool bwd = ae_kernel_has_backward(e->p, k), dw = has_step(e, k, STEP_WEIGHT_GRAD);
  if (bwd) emit_dact_db(e, k, name, rows, g.cout);
  if (dw) {
    gemm_comment(e, ae_sprintf(e->a, "%s_dw", name), "dw += the windows^T dy", gw);
    OUT(GLOBAL "%s_dw(%s" CF "dy, " F "dw) {\n", name, sp);
    OUT("  %s([=](int i, int k) { return %s_in(%sk, i); }, [=](int k, int j) { return dy[(long)k * %d + j]; },\n"
        "    [=](int i, int j, float s) { dw[(long)i * %d + j] += s; });\n}\n", gemm_call(e, gw), name, sa, g.cout, g.cout);
  }
  gemm_shape *gx = ae_alloc(e->a, sizeof *gx * (size_t)ns);
  for (int i = 0; bwd && i < ns; i++)
    if (has_grad(e, ((ae_view *)k->src.items[i])->node)) emit_conv_dx(e, k, name, g, i, &gx[i]);
  const char *y = val(e, k->out);
  OUT("\nstatic void %s_forward(const run *r) {\n  AEC_LAUNCH(%s_fwd, %s, AECD_THREADS, 0, r->stream, %s%s, %s, %s);\n}\n", name, name,
      gemm_grid(e, f), srcs, pval(e, k->w), k->b ? pval(e, k->b) : "(const float *)NULL", y);
  if (!bwd) return;
  const char *dy = grad(e, k->out);
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  launch_dact_db(e, k, name, rows, g.cout, dy, y);
  if (dw) OUT("  AEC_LAUNCH(%s_dw, %s, AECD_THREADS, 0, r->stream, %s%s, %s);\n", name, gemm_grid(e, gw), srcs, dy, pgrad(e, k->w));
  for (int i = 0; i < ns; i++) {
    const ae_node *s = ((ae_view *)k->src.items[i])->node;
    if (has_grad(e, s))
      OUT("  AEC_LAUNCH(%s_dx%d, %s, AECD_THREADS, 0, r->stream, %s, %s, %s);\n", name, i, gemm_grid(e, gx[i]), dy, pval(e, k->w), grad(e, s));
  }
  OUT("}\n");
}

/* ---- transposed convolution, as a gather: output pixel (oh, ow) takes tap (kh, kw) of input
 * pixel ((oh + pad - kh) / s, (ow + pad - kw) / s) where that divides; weights [cin, k, k, cout]. */
static void emit_conv_t(emitter *e, const ae_kernel *k, const char *name) {
  const ae_node *n = k->node, *x = ((ae_view *)k->src.items[0])->node;
  int B = e->p->batch, h = x->shape.d[0], w = x->shape.d[1], cin = x->shape.d[2];
  int ho = n->shape.d[0], wo = n->shape.d[1], cout = n->units, kk = n->k, s = n->stride, pad = n->pad_same ? (kk - 1) / 2 : 0;
  long rows = (long)B * ho * wo, win = (long)kk * kk * cin, dwin = (long)kk * kk * cout;
  const char *padp = pad ? ae_sprintf(e->a, " + %d", pad) : "";
  OUT("__device__ __forceinline__ float %s_in(" CF "x, int row, int k) {   /* k = (kh, kw, ci) */\n", name);
  OUT("  int n = row / %d, q = row %% %d, tap = k / %d, c = k %% %d;\n", ho * wo, ho * wo, cin, cin);
  OUT("  int th = q / %d%s - tap / %d, tw = q %% %d%s - tap %% %d;\n", wo, padp, kk, wo, padp, kk);
  if (s > 1) OUT("  if (th < 0 || tw < 0 || th %% %d || tw %% %d) return 0.0f;\n  th /= %d, tw /= %d;\n", s, s, s, s);
  else OUT("  if (th < 0 || tw < 0) return 0.0f;\n");
  OUT("  if (th >= %d || tw >= %d) return 0.0f;\n  return x[(((long)n * %d + th) * %d + tw) * %d + c];\n}\n", h, w, h, w, cin);
  const char *wat = ae_sprintf(e->a, "w[((long)(k %% %d) * %d + k / %d) * %d + j]", cin, kk * kk, cin, cout);
  gemm_shape f = gemm_of(rows, cout, win), gw = gemm_of(win, cout, rows), gx = gemm_of((long)B * h * w, cin, dwin);
  gemm_comment(e, ae_sprintf(e->a, "%s_fwd", name), ae_sprintf(e->a, "y = %s(conv_transpose %dx%d /%d + b), implicit",
                                                                 ae_op_name(k->act ? k->act->op : OP_LINEAR), kk, kk, s), f);
  OUT(GLOBAL "%s_fwd(" CF "x, " CF "w, " CF "b, " F "y) {\n", name);
  OUT("  %s([=](int i, int k) { return %s_in(x, i, k); }, [=](int k, int j) { return %s; },\n    %s);\n}\n", gemm_call(e, f), name,
      wat, epilogue(e, k, cout));
  bool bwd = ae_kernel_has_backward(e->p, k), dw = has_step(e, k, STEP_WEIGHT_GRAD), dx = has_step(e, k, STEP_INPUT_GRAD);
  if (bwd) emit_dact_db(e, k, name, rows, cout);
  if (dw) {
    gemm_comment(e, ae_sprintf(e->a, "%s_dw", name), "dw += the gathered inputs^T dy", gw);
    OUT(GLOBAL "%s_dw(" CF "x, " CF "dy, " F "dw) {\n", name);
    OUT("  %s([=](int i, int k) { return %s_in(x, k, i); }, [=](int k, int j) { return dy[(long)k * %d + j]; },\n"
        "    [=](int i, int j, float s) { dw[((long)(i %% %d) * %d + i / %d) * %d + j] += s; });\n}\n", gemm_call(e, gw), name, cout, cin,
        kk * kk, cin, cout);
  }
  if (dx) {
    gemm_comment(e, ae_sprintf(e->a, "%s_dx", name), "dx += the window of dy w^T (a plain convolution)", gx);
    OUT(GLOBAL "%s_dx(" CF "dy, " CF "w, " F "dx) {\n  %s(\n    [=](int i, int k) {\n", name, gemm_call(e, gx));
    OUT("      int n = i / %d, q = i %% %d, tap = k / %d, co = k %% %d;\n", h * w, h * w, cout, cout);
    OUT("      int oh = %s + tap / %d, ow = %s + tap %% %d;\n", window_start(e, ae_sprintf(e->a, "q / %d", w), s, pad), kk,
        window_start(e, ae_sprintf(e->a, "q %% %d", w), s, pad), kk);
    OUT("      if (oh < 0 || oh >= %d || ow < 0 || ow >= %d) return 0.0f;\n      return dy[(((long)n * %d + oh) * %d + ow) * %d + co];\n    },\n",
        ho, wo, ho, wo, cout);
    OUT("    [=](int k, int j) { return w[((long)j * %d + k / %d) * %d + k %% %d]; },\n", kk * kk, cout, cout, cout);
    OUT("    [=](int i, int j, float s) { dx[(long)i * %d + j] += s; });\n}\n", cin);
  }
  emit_gemm_drivers(e, k, name, x, f, gw, gx, rows, cout, bwd, dw, dx);
}

/* ---- batch norm: a block per channel for the statistics, as aert_batchnorm_forward and
 * aert_batchnorm_backward (sums in double, in a fixed order) ------------------------------ */
static void emit_batchnorm(emitter *e, const ae_kernel *k, const char *name) {
  const ae_node *n = k->node, *x = ((ae_view *)k->src.items[0])->node;
  int c = channels(k->out);
  long N = (long)e->p->batch * elems(k->out), rows = N / c;
  const char *A = act_enum(k->act), *al = flt(e, act_alpha(k->act)), *mom = flt(e, n->momentum), *eps = flt(e, n->eps);
  OUT("/* %s_stats: the batch's mean and 1/std per channel (or the running ones), the running statistics\n"
      " * updated; launch %d blocks of 256, one per channel */\n", name, c);
  OUT(GLOBAL "%s_stats(" CF "x, float *rmean, float *rvar, " F "stats, int use_batch) {\n"
      "  const int ch = blockIdx.x;\n  const float momentum = %s, eps = %s;\n  double mean = rmean[ch], var = rvar[ch];\n"
      "  if (use_batch) {\n    double s = 0, ss = 0;\n    for (long r = threadIdx.x; r < %ldL; r += AECD_THREADS) s += x[r * %d + ch];\n"
      "    mean = aecd_block_total(s) / %ld.0;\n    for (long r = threadIdx.x; r < %ldL; r += AECD_THREADS) {\n"
      "      double d = x[r * %d + ch] - mean;\n      ss += d * d;\n    }\n    var = aecd_block_total(ss) / %ld.0;\n"
      "    if (threadIdx.x == 0) {\n      rmean[ch] = (float)((1 - momentum) * rmean[ch] + momentum * mean);\n"
      "      rvar[ch] = (float)((1 - momentum) * rvar[ch] + momentum * var * %ld.0 / %ld.0);\n    }\n  }\n"
      "  if (threadIdx.x == 0) {\n    stats[ch] = (float)mean;\n    stats[%d + ch] = (float)(1.0 / sqrt(var + eps));\n  }\n}\n",
      name, mom, eps, rows, c, rows, rows, c, rows, rows, rows > 1 ? rows - 1 : 1, c);
  OUT("/* %s_fwd: y = %s(gamma (x - mean) / std + beta); launch %ld blocks of 256 */\n", name, ae_op_name(k->act ? k->act->op : OP_LINEAR),
      ew_blocks(N));
  OUT(GLOBAL "%s_fwd(" CF "x, " CF "gamma, " CF "beta, " CF "stats, " F "y) {\n  AECD_FOR(i, %ldL) {\n    int ch = (int)(i %% %d);\n"
      "    y[i] = aecd_act<%s>(gamma[ch] * (x[i] - stats[ch]) * stats[%d + ch] + beta[ch], %s);\n  }\n}\n", name, N, c, A, c, al);
  bool bwd = ae_kernel_has_backward(e->p, k), dx = bwd && has_grad(e, x), dw = bwd && !k->w->frozen;
  if (bwd && k->act && k->act->op != OP_LINEAR)
    OUT("/* %s_dact: dy *= %s'(y) in place; launch %ld blocks of 256 */\n" GLOBAL "%s_dact(" F "dy, " CF "y) {\n"
        "  AECD_FOR(i, %ldL) dy[i] *= aecd_act_grad<%s>(y[i], %s);\n}\n", name, ae_op_name(k->act->op), ew_blocks(N), name, N, A, al);
  if (dx || dw) {
    OUT("/* %s_bwd: per channel the sums of dy and dy xhat, dgamma and dbeta, then dx; launch %d blocks of 256 */\n", name, c);
    OUT(GLOBAL "%s_bwd(" CF "dy, " CF "x, " CF "gamma, " CF "stats, float *dx, float *dgamma, float *dbeta, int use_batch) {\n"
        "  const int ch = blockIdx.x;\n  const float mean = stats[ch], inv = stats[%d + ch];\n  double sd = 0, sdx = 0;\n"
        "  for (long r = threadIdx.x; r < %ldL; r += AECD_THREADS) {\n    sd += dy[r * %d + ch];\n"
        "    sdx += dy[r * %d + ch] * (x[r * %d + ch] - mean) * inv;\n  }\n  sd = aecd_block_total(sd);\n  sdx = aecd_block_total(sdx);\n"
        "  if (dgamma && threadIdx.x == 0) {\n    dgamma[ch] += (float)sdx;\n    dbeta[ch] += (float)sd;\n  }\n  if (!dx) return;\n"
        "  for (long r = threadIdx.x; r < %ldL; r += AECD_THREADS) {\n    long i = r * %d + ch;\n    float xhat = (x[i] - mean) * inv;\n"
        "    dx[i] += use_batch ? gamma[ch] * inv * (float)(dy[i] - sd / %ld.0 - xhat * sdx / %ld.0) : gamma[ch] * inv * dy[i];\n  }\n}\n",
        name, c, rows, c, c, c, rows, c, rows, rows);
  }
  const char *y = val(e, k->out), *st = ae_sprintf(e->a, "r->%s", buf_name(e, &k->stats));
  const char *use = k->w->frozen ? "0" : "r->training";
  OUT("\nstatic void %s_forward(const run *r) {\n  AEC_LAUNCH(%s_stats, dim3(%d), AECD_THREADS, 0, r->stream, %s, (float *)(%s), (float *)(%s), %s, %s);\n"
      "  AEC_LAUNCH(%s_fwd, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s, %s, %s, %s);\n}\n", name, name, c, val(e, x), pval(e, k->rmean),
      pval(e, k->rvar), st, use, name, ew_blocks(N), val(e, x), pval(e, k->w), pval(e, k->b), st, y);
  if (!bwd) return;
  const char *dy = grad(e, k->out);
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  if (k->act && k->act->op != OP_LINEAR) OUT("  AEC_LAUNCH(%s_dact, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s);\n", name, ew_blocks(N), dy, y);
  if (dx || dw)
    OUT("  AEC_LAUNCH(%s_bwd, dim3(%d), AECD_THREADS, 0, r->stream, %s, %s, %s, %s, %s, %s, %s, %d);\n", name, c, dy, val(e, x), pval(e, k->w), st,
        dx ? grad(e, x) : "(float *)NULL", dw ? pgrad(e, k->w) : "(float *)NULL", dw ? pgrad(e, k->b) : "(float *)NULL", k->w->frozen ? 0 : 1);
  OUT("}\n");
}

/* ---- elementwise and small kernels ---------------------------------------------------
 * One emitter for the rest: a forward body over N values (or rows) and, when a gradient
 * flows into the input, a backward body; each a grid-stride loop, 4 values per thread. */
typedef struct {
  const char *params, *args;           /* the forward kernel's parameters and its launch's arguments */
  const char *body;                    /* inside AECD_FOR(i, N) */
  const char *bparams, *bargs, *bbody; /* backward; NULL: no backward kernel */
  long n, bn;                          /* loop lengths */
  const char *what;
} simple_kernel;

/* The input pixel (ih, iw) of value i of an h x w x c tensor, and its image b. */
static const char *pixel_of(emitter *e, int h, int w, int c) {
  return ae_sprintf(e->a, "long p = i / %d, ch = i %% %d, iw = p %% %d, ih = p / %d %% %d, b = p / %ld;\n", c, c, w, w, h, (long)h * w);
}

/* Overlapping pooling windows: the backward gathers, per input value, the outputs whose
 * windows hold it in aert_pool_backward's order (rows, then columns); max pooling's
 * gradient goes to the first maximum of each window. */
static void pool_gather_of(emitter *e, const ae_kernel *k, simple_kernel *s) {
  const ae_node *n = k->node, *in = n->in.items[0];
  int h = in->shape.d[0], w = in->shape.d[1], c = in->shape.d[2], ho = n->shape.d[0], wo = n->shape.d[1], kk = n->k, st = n->stride;
  const char *o = ae_sprintf(e->a, "((b * %d + oh) * %d + ow) * %d + ch", ho, wo, c);
  s->bn = (long)e->p->batch * elems(in);
  s->bbody = ae_sprintf(e->a, "%s    float acc = dx[i];\n"
                              "    for (long oh = ih >= %d ? (ih - %d) / %d : 0; oh <= ih / %d && oh < %d; oh++)\n"
                              "      for (long ow = iw >= %d ? (iw - %d) / %d : 0; ow <= iw / %d && ow < %d; ow++) {\n%s      }\n    dx[i] = acc;",
                        pixel_of(e, h, w, c), kk, kk - st, st, st, ho, kk, kk - st, st, st, wo,
                        n->op == OP_MAXPOOL
                            ? ae_sprintf(e->a, "        long first = -1;   /* the window's first maximum */\n"
                                               "        for (int kh = 0; kh < %d && first < 0; kh++)\n"
                                               "          for (int kw = 0; kw < %d && first < 0; kw++)\n"
                                               "            if (x[((b * %d + oh * %d + kh) * %d + ow * %d + kw) * %d + ch] == y[%s]) first = (oh * %d + kh) * %d + ow * %d + kw;\n"
                                               "        if (first == ih * %d + iw) acc += dy[%s];\n",
                                         kk, kk, h, st, w, st, c, o, st, w, st, w, o)
                            : ae_sprintf(e->a, "        acc += dy[%s] / (float)%d;\n", o, kk * kk));
}

/* Bilinear upsampling, as aert_upsample_bilinear_*: forward per output value from its four
 * neighbours; backward per input value, gathering the outputs (rows, then columns, then the
 * four taps in the CPU's order) whose taps reach it, a 3f x 3f neighbourhood. */
static simple_kernel bilinear_of(emitter *e, const ae_kernel *k, simple_kernel s) {
  const ae_node *n = k->node, *in = n->in.items[0];
  int f = n->factor, h = in->shape.d[0], w = in->shape.d[1], c = in->shape.d[2], ho = h * f, wo = w * f;
  s.what = ae_sprintf(e->a, "bilinear upsample x%d", f);
  s.params = CF "x, " F "y";
  s.args = ae_sprintf(e->a, "%s, %s", val(e, ((ae_view *)k->src.items[0])->node), val(e, k->out));
  s.body = ae_sprintf(e->a, "long p = i / %d, ch = i %% %d, ow = p %% %d, oh = p / %d %% %d, b = p / %ld;\n    int sh, sw;\n    float lh, lw;\n"
                            "    int h0 = aecd_bilinear_tap((int)oh, %d, %d, &sh, &lh), w0 = aecd_bilinear_tap((int)ow, %d, %d, &sw, &lw);\n"
                            "    const float *a = x + ((b * %d + h0) * %d + w0) * %d + ch, *bb = a + (long)sh * %d;\n"
                            "    y[i] = (1 - lh) * ((1 - lw) * a[0] + lw * a[sw * %d]) + lh * ((1 - lw) * bb[0] + lw * bb[sw * %d]);",
                      c, c, wo, wo, ho, (long)wo * ho, f, h, f, w, h, w, c, w * c, c, c);
  s.bn = (long)e->p->batch * elems(in);
  s.bbody = NULL;
  if (!has_grad(e, ((ae_view *)k->src.items[0])->node) || !ae_kernel_has_backward(e->p, k)) return s;
  s.bparams = CF "dy, " F "dx";
  s.bargs = ae_sprintf(e->a, "%s, %s", grad(e, k->out), grad(e, ((ae_view *)k->src.items[0])->node));
  s.bbody = ae_sprintf(e->a, "%s    float acc = dx[i];\n    for (int oh = ih > 0 ? (int)(ih - 1) * %d : 0; oh < (ih + 2) * %d && oh < %d; oh++) {\n"
                             "      int sh, sw;\n      float lh, lw;\n      int h0 = aecd_bilinear_tap(oh, %d, %d, &sh, &lh);\n"
                             "      if (h0 != ih && h0 + sh != ih) continue;\n"
                             "      for (int ow = iw > 0 ? (int)(iw - 1) * %d : 0; ow < (iw + 2) * %d && ow < %d; ow++) {\n"
                             "        int w0 = aecd_bilinear_tap(ow, %d, %d, &sw, &lw);\n        if (w0 != iw && w0 + sw != iw) continue;\n"
                             "        float g = dy[((b * %d + oh) * %d + ow) * %d + ch];\n"
                             "        if (h0 == ih && w0 == iw) acc += (1 - lh) * (1 - lw) * g;\n"
                             "        if (h0 == ih && w0 + sw == iw) acc += (1 - lh) * lw * g;\n"
                             "        if (h0 + sh == ih && w0 == iw) acc += lh * (1 - lw) * g;\n"
                             "        if (h0 + sh == ih && w0 + sw == iw) acc += lh * lw * g;\n      }\n    }\n    dx[i] = acc;",
                       pixel_of(e, h, w, c), f, f, ho, f, h, f, f, wo, f, w, ho, wo, c);
  return s;
}

static simple_kernel simple_of(emitter *e, const ae_kernel *k) {
  const ae_node *n = k->node, *o = k->out, *in = n->in.items[0];
  const ae_node *x = ((ae_view *)k->src.items[0])->node;
  int B = e->p->batch;
  long N = (long)B * elems(o);
  const char *y = val(e, o), *xv = val(e, x);
  bool dx = has_grad(e, x);
  const char *dyv = ae_kernel_has_backward(e->p, k) ? grad(e, o) : NULL, *dxv = dx ? grad(e, x) : NULL;
  simple_kernel s = {.n = N, .bn = N};
  switch (k->kind) {
  case K_ACT: {
    const char *A = act_enum(n), *al = flt(e, n->alpha);
    s.what = ae_sprintf(e->a, "y = %s(x)", ae_op_name(n->op));
    s.params = CF "x, " F "y";
    s.args = ae_sprintf(e->a, "%s, %s", xv, y);
    s.body = ae_sprintf(e->a, "y[i] = aecd_act<%s>(x[i], %s);", A, al);
    s.bparams = CF "dy, " CF "y, " F "dx";
    s.bargs = ae_sprintf(e->a, "%s, %s, %s", dyv, y, dxv);
    s.bbody = ae_sprintf(e->a, "dx[i] += dy[i] * aecd_act_grad<%s>(y[i], %s);", A, al);
    break;
  }
  case K_SAMPLE: {
    const ae_node *lv = ((ae_view *)k->src.items[1])->node;
    bool dmu = has_grad(e, x), dlv = has_grad(e, lv);
    s.what = "z = mu + exp(logvar / 2) eps in training, mu otherwise";
    s.params = CF "mu, " CF "lv, " F "z, int training, " SEED_PARAMS;
    s.args = ae_sprintf(e->a, "%s, %s, %s, r->training, %s", xv, val(e, lv), y, seed_args(e, k));
    s.body = SEEDED "z[i] = training ? mu[i] + expf(0.5f * lv[i]) * aecd_normal(seed, base + (uint64_t)i) : mu[i];";
    if (dmu || dlv) {
      s.bparams = CF "dz, " CF "lv, float *dmu, float *dlv, " SEED_PARAMS;
      s.bargs = ae_sprintf(e->a, "%s, %s, %s, %s, %s", dyv, val(e, lv), dmu ? grad(e, x) : "(float *)NULL",
                           dlv ? grad(e, lv) : "(float *)NULL", seed_args(e, k));
      s.bbody = ae_sprintf(e->a, "%s%s", dmu ? "dmu[i] += dz[i];" : "",
                           dlv ? "\n    " SEEDED "dlv[i] += dz[i] * 0.5f * expf(0.5f * lv[i]) * aecd_normal(seed, base + (uint64_t)i);" : "");
    }
    dx = dmu || dlv;
    break;
  }
  case K_NOISE: {
    const char *lo = flt(e, n->lo), *hi = flt(e, n->hi);
    s.what = ae_sprintf(e->a, "y = x + N(0, %g) in training, clipped", n->stddev);
    s.params = CF "x, " F "y, int training, " SEED_PARAMS;
    s.args = ae_sprintf(e->a, "%s, %s, r->training, %s", xv, y, seed_args(e, k));
    s.body = ae_sprintf(e->a, SEEDED "float v = training ? x[i] + %s * aecd_normal(seed, base + (uint64_t)i) : x[i];\n"
                              "    y[i] = training ? (v < %s ? %s : v > %s ? %s : v) : v;", flt(e, n->stddev), lo, lo, hi, hi);
    s.bparams = CF "dy, " CF "y, " F "dx";
    s.bargs = ae_sprintf(e->a, "%s, %s, %s", dyv, y, dxv);
    s.bbody = ae_sprintf(e->a, "dx[i] += y[i] > %s && y[i] < %s ? dy[i] : 0.0f;", lo, hi);
    break;
  }
  case K_DROPOUT: {
    const char *rate = flt(e, n->rate), *keep = ae_sprintf(e->a, "(1 / (1 - %s))", rate);
    s.what = ae_sprintf(e->a, "dropout %g in training", n->rate);
    s.params = CF "x, " F "y, int training, " SEED_PARAMS;
    s.args = ae_sprintf(e->a, "%s, %s, r->training, %s", xv, y, seed_args(e, k));
    s.body = ae_sprintf(e->a, SEEDED "y[i] = !training ? x[i] : aert_uniform(seed, base + (uint64_t)i) >= %s ? x[i] * %s : 0.0f;", rate, keep);
    s.bparams = CF "dy, " F "dx, " SEED_PARAMS;
    s.bargs = ae_sprintf(e->a, "%s, %s, %s", dyv, dxv, seed_args(e, k));
    s.bbody = ae_sprintf(e->a, SEEDED "dx[i] += aert_uniform(seed, base + (uint64_t)i) >= %s ? dy[i] * %s : 0.0f;", rate, keep);
    break;
  }
  case K_UPSAMPLE: {   /* nearest: forward per output value; backward per input value, its block summed in row order */
    if (n->bilinear) return bilinear_of(e, k, s);
    int f = n->factor, h = in->shape.d[0], w = in->shape.d[1], c = in->shape.d[2];
    s.what = ae_sprintf(e->a, "nearest upsample x%d", f);
    s.params = CF "x, " F "y";
    s.args = ae_sprintf(e->a, "%s, %s", xv, y);
    s.body = ae_sprintf(e->a, "long p = i / %d, ch = i %% %d, ow = p %% %d, oh = p / %d %% %d, b = p / %d;\n"
                              "    y[i] = x[((b * %d + oh / %d) * %d + ow / %d) * %d + ch];",
                        c, c, w * f, w * f, h * f, w * f * h * f, h, f, w, f, c);
    s.bn = (long)B * elems(in);
    s.bparams = CF "dy, " F "dx";
    s.bargs = ae_sprintf(e->a, "%s, %s", dyv, dxv);
    s.bbody = ae_sprintf(e->a, "long p = i / %d, ch = i %% %d, iw = p %% %d, ih = p / %d %% %d, b = p / %d;\n"
                               "    float acc = dx[i];\n    for (int u = 0; u < %d; u++)\n      for (int v = 0; v < %d; v++)\n"
                               "        acc += dy[((b * %d + ih * %d + u) * %d + iw * %d + v) * %d + ch];\n    dx[i] = acc;",
                         c, c, w, w, h, w * h, f, f, h * f, f, w * f, f, c);
    break;
  }
  case K_POOL: {   /* windows that do not overlap: each input value in one window (else pool_gather_of) */
    int h = in->shape.d[0], w = in->shape.d[1], c = in->shape.d[2], ho = n->shape.d[0], wo = n->shape.d[1], kk = n->k, st = n->stride;
    bool mx = n->op == OP_MAXPOOL;
    const char *at = ae_sprintf(e->a, "((b * %d + oh * %d + kh) * %d + ow * %d + kw) * %d + ch", h, st, w, st, c);
    const char *head = ae_sprintf(e->a, "long p = i / %d, ch = i %% %d, ow = p %% %d, oh = p / %d %% %d, b = p / %d;\n", c, c, wo, wo, ho, wo * ho);
    s.what = ae_sprintf(e->a, "%s %dx%d /%d", ae_op_name(n->op), kk, kk, st);
    s.params = CF "x, " F "y";
    s.args = ae_sprintf(e->a, "%s, %s", xv, y);
    s.body = ae_sprintf(e->a, "%s    float acc = %s;\n    for (int kh = 0; kh < %d; kh++)\n      for (int kw = 0; kw < %d; kw++) {\n"
                              "        float v = x[%s];\n        acc = %s;\n      }\n    y[i] = %s;", head, mx ? "-INFINITY" : "0.0f", kk, kk,
                        at, mx ? "v > acc ? v : acc" : "acc + v", mx ? "acc" : ae_sprintf(e->a, "acc / (float)%d", kk * kk));
    s.bparams = CF "dy, " CF "x, " CF "y, " F "dx";
    s.bargs = ae_sprintf(e->a, "%s, %s, %s, %s", dyv, xv, y, dxv);
    s.bbody = mx ? ae_sprintf(e->a, "%s    int done = 0;\n    for (int kh = 0; kh < %d && !done; kh++)\n      for (int kw = 0; kw < %d && !done; kw++)\n"
                                    "        if (x[%s] == y[i]) { dx[%s] += dy[i]; done = 1; }", head, kk, kk, at, at)
                 : ae_sprintf(e->a, "%s    for (int kh = 0; kh < %d; kh++)\n      for (int kw = 0; kw < %d; kw++) dx[%s] += dy[i] / (float)%d;", head,
                              kk, kk, at, kk * kk);
    if (st < kk) pool_gather_of(e, k, &s);
    break;
  }
  case K_SOFTMAX: {   /* a thread per row, as aert_softmax_row */
    int c = channels(o);
    s.n = s.bn = N / c;
    s.what = "softmax over the last axis, a row per thread";
    s.params = CF "x, " F "y";
    s.args = ae_sprintf(e->a, "%s, %s", xv, y);
    s.body = ae_sprintf(e->a, "const float *xr = x + i * %d;\n    float mx = xr[0];\n    for (int j = 1; j < %d; j++) mx = xr[j] > mx ? xr[j] : mx;\n"
                              "    double sum = 0;\n    for (int j = 0; j < %d; j++) sum += expf(xr[j] - mx);\n"
                              "    for (int j = 0; j < %d; j++) y[i * %d + j] = (float)(expf(xr[j] - mx) / sum);", c, c, c, c, c);
    s.bparams = CF "dy, " CF "y, " F "dx";
    s.bargs = ae_sprintf(e->a, "%s, %s, %s", dyv, y, dxv);
    s.bbody = ae_sprintf(e->a, "double dot = 0;\n    for (int j = 0; j < %d; j++) dot += dy[i * %d + j] * y[i * %d + j];\n"
                               "    for (int j = 0; j < %d; j++) dx[i * %d + j] += y[i * %d + j] * (float)(dy[i * %d + j] - dot);",
                         c, c, c, c, c, c, c);
    break;
  }
  default: break;
  }
  if (!dx || !dyv) s.bbody = NULL;
  return s;
}

static void emit_simple(emitter *e, const ae_kernel *k, const char *name) {
  simple_kernel s = simple_of(e, k);
  OUT("/* %s_fwd: %s; launch %ld blocks of 256 */\n", name, s.what, ew_blocks(s.n));
  OUT(GLOBAL "%s_fwd(%s) {\n  AECD_FOR(i, %ldL) {\n    %s\n  }\n}\n", name, s.params, s.n, s.body);
  if (s.bbody) {
    OUT("/* %s_bwd: its gradient; launch %ld blocks of 256 */\n", name, ew_blocks(s.bn));
    OUT(GLOBAL "%s_bwd(%s) {\n  AECD_FOR(i, %ldL) {\n    %s\n  }\n}\n", name, s.bparams, s.bn, s.bbody);
  }
  OUT("\nstatic void %s_forward(const run *r) {\n  AEC_LAUNCH(%s_fwd, dim3(%ld), AECD_THREADS, 0, r->stream, %s);\n}\n", name, name, ew_blocks(s.n), s.args);
  if (!ae_kernel_has_backward(e->p, k)) return;
  if (s.bbody) OUT("\nstatic void %s_backward(const run *r) {\n  AEC_LAUNCH(%s_bwd, dim3(%ld), AECD_THREADS, 0, r->stream, %s);\n}\n", name, name, ew_blocks(s.bn), s.bargs);
  else OUT("\nstatic void %s_backward(const run *r) { (void)r; }  /* no gradient flows into its input */\n", name);
}

/* concat and add: forward one kernel over the output; backward one per source. */
static void emit_join(emitter *e, const ae_kernel *k, const char *name) {
  const ae_node *o = k->out;
  long N = (long)e->p->batch * elems(o);
  int ct = channels(o);
  bool cat = k->kind == K_CONCAT;
  OUT("/* %s_fwd: %s of %d sources; launch %ld blocks of 256 */\n" GLOBAL "%s_fwd(", name, cat ? "concat" : "add", k->src.len, ew_blocks(N), name);
  for (int i = 0; i < k->src.len; i++) OUT(CF "x%d, ", i);
  OUT(F "y) {\n  AECD_FOR(i, %ldL) {\n", N);
  if (cat) OUT("    long p = i / %d;\n    int c = (int)(i %% %d);\n", ct, ct);
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    int c = channels(v->node);
    const char *when = i + 1 < k->src.len ? ae_sprintf(e->a, "if (c < %d) ", v->ch_off + c) : "";
    if (cat) OUT("    %s%sy[i] = x%d[p * %d + %s];\n", i ? "else " : "", when, i, c, v->ch_off ? ae_sprintf(e->a, "c - %d", v->ch_off) : "c");
    else OUT("    %s", i == 0 ? "float s = x0[i];\n" : ae_sprintf(e->a, "s += x%d[i];\n", i));
  }
  if (!cat) OUT("    y[i] = s;\n");
  OUT("  }\n}\n");
  bool bwd = ae_kernel_has_backward(e->p, k);
  for (int i = 0; bwd && i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    if (!has_grad(e, v->node)) continue;
    long n = (long)e->p->batch * elems(v->node);
    int c = channels(v->node);
    OUT("/* %s_bwd%d: the gradient of source %d; launch %ld blocks of 256 */\n" GLOBAL "%s_bwd%d(" CF "dy, " F "dx) {\n", name, i, i,
        ew_blocks(n), name, i);
    if (cat) OUT("  AECD_FOR(i, %ldL) dx[i] += dy[i / %d * %d + %d + i %% %d];\n}\n", n, c, ct, v->ch_off, c);
    else OUT("  AECD_FOR(i, %ldL) dx[i] += dy[i];\n}\n", n);
  }
  OUT("\nstatic void %s_forward(const run *r) {\n  AEC_LAUNCH(%s_fwd, dim3(%ld), AECD_THREADS, 0, r->stream, ", name, name, ew_blocks(N));
  for (int i = 0; i < k->src.len; i++) OUT("%s, ", val(e, ((ae_view *)k->src.items[i])->node));
  OUT("%s);\n}\n", val(e, o));
  if (!bwd) return;
  OUT("\nstatic void %s_backward(const run *r) {\n", name);
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    if (has_grad(e, v->node))
      OUT("  AEC_LAUNCH(%s_bwd%d, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s);\n", name, i, ew_blocks((long)e->p->batch * elems(v->node)),
          grad(e, o), grad(e, v->node));
  }
  OUT("}\n");
}

/* ---- the losses ------------------------------------------------------------------------
 * Forward: each term's sums (in double, one block each, a fixed tree) into r->sums, copied
 * back once; the host divides them as the C target's loss functions do. Backward: one
 * elementwise kernel per term seeds the gradients of its operands. */

/* Dice and jaccard sum per class over the rows in this many blocks: each block's partial
 * sums (inter, card, count per class) land in r->sums, and one block adds them in block order. */
static int overlap_blocks(const ae_program *p, const ae_loss_term *t) {
  long rows = (long)p->batch * elems(t->a) / p->m->n_classes, nb = (rows + 255) / 256;   /* a row a thread */
  return nb < 64 ? (int)nb : 64;
}

static bool overlap_loss(const ae_loss_term *t) { return t->kind == LOSS_DICE || t->kind == LOSS_JACCARD; }

static int slots_of(const ae_program *p, const ae_loss_term *t) {
  if (t->kind == LOSS_SOFTMAX_XENT || t->kind == LOSS_FOCAL) return 2;   /* the loss and the weight sum */
  if (overlap_loss(t)) return 1 + 2 * p->m->n_classes + 3 * p->m->n_classes * overlap_blocks(p, t);   /* loss, dL/dnum, dL/dden, parts */
  if (t->kind != LOSS_L2) return 1;
  int n = 0;
  for (int j = 0; j < p->params.len; j++) {
    const ae_tensor *w = p->params.items[j];
    n += w->is_weight && !w->frozen;
  }
  return n;
}

/* One block sum kernel: NAME over n values of the expression f(i). */
static void emit_sum_kernel(emitter *e, const char *name, const char *params, long n, const char *f) {
  OUT("/* %s: a block sum of %ld values; launch 1 block of 256 */\n" GLOBAL "%s(%s, double *out) {\n"
      "  aecd_block_sum<%ldL>([=](long i) -> double { %s }, out);\n}\n", name, n, name, params, n, f);
}

/* The softmax of logits row r, recomputed as aert_softmax_row does: mx and sum. */
static const char *softmax_head(emitter *e, int c) {
  return ae_sprintf(e->a, "const float *x = logits + r * %d;\n    float mx = x[0];\n    for (int j = 1; j < %d; j++) mx = x[j] > mx ? x[j] : mx;\n"
                          "    double sum = 0;\n    for (int j = 0; j < %d; j++) sum += expf(x[j] - mx);\n", c, c, c);
}

/* softmax_xent, and focal with gamma > 0, as aert_loss_focal: the loss and the weight sum
 * by block sums; backward a row a thread, -f = dL/dp_t p_t scaling p - onehot. */
static void emit_focal(emitter *e, int i, const char *ln) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int B = e->p->batch, c = e->p->m->n_classes;
  long rows = (long)B * elems(t->a) / c;
  double gamma = t->kind == LOSS_FOCAL ? t->gamma : 0;
  bool weighted = e->cw_at[i] >= 0;
  const char *w = weighted ? "(double)cw[k]" : "1.0", *cwp = weighted ? ", " CF "cw" : "";
  const char *pt = "float pk = (float)(expf(x[k] - mx) / sum);\n    double pt = pk > 1e-30f ? pk : 1e-30f;\n";
  const char *focus = gamma > 0 ? ae_sprintf(e->a, " * pow(1 - pt, %.17g)", gamma) : "";
  emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), ae_sprintf(e->a, CF "logits, " CF "t%s", cwp), rows,
                  ae_sprintf(e->a, "long r = i;\n    int k = (int)t[r];\n    if (k < 0 || k >= %d) return 0.0;\n    %s    %s"
                                   "    return -(%s%s * log(pt));", c, softmax_head(e, c), pt, w, focus));
  emit_sum_kernel(e, ae_sprintf(e->a, "%s_wsum", ln), ae_sprintf(e->a, CF "t%s", cwp), rows,
                  ae_sprintf(e->a, "int k = (int)t[i];\n    return k < 0 || k >= %d ? 0.0 : %s;", c, w));
  const char *f = gamma > 0 ? ae_sprintf(e->a, "%s    double q = 1 - pt, f = q > 0 ? %.17g * pow(q, %.17g) * pt * log(pt) - pow(q, %.17g) : 0;\n"
                                               "    float g = (float)(%s * %s / denom * -f);\n", pt, gamma, gamma - 1, gamma, w, flt(e, t->weight))
                            : ae_sprintf(e->a, "float g = (float)(%s * %s / denom);\n", w, flt(e, t->weight));
  OUT(GLOBAL "%s_bwd(" CF "logits, " CF "t%s, " F "dl, const double *wsum, double global) {\n"
      "  double denom = global > 0 ? global : %s;\n  if (denom <= 0) return;\n  AECD_FOR(r, %ldL) {\n"
      "    int k = (int)t[r];\n    if (k < 0 || k >= %d) continue;\n    %s    %s"
      "    for (int j = 0; j < %d; j++) dl[r * %d + j] += g * ((float)(expf(x[j] - mx) / sum) - (j == k));\n  }\n}\n",
      ln, cwp, t->reduce_sum ? ae_sprintf(e->a, "%d.0", B) : "*wsum", rows, c, softmax_head(e, c), f, c, c);
}

/* dice and jaccard, as aert_loss_overlap: NAME_part sums per class (inter = sum p_k over
 * rows of class k, card = sum p_i, count) over a grid-stride share of the rows, a class at
 * a time (the softmax recomputed per class: c^2 exponentials a row, no per-thread arrays);
 * NAME_score adds the parts in block order and writes the loss, dL/dnum and dL/dden per
 * class; NAME_bwd, a row a thread, takes dL/dp through the softmax. */
static void emit_overlap(emitter *e, int i, const char *ln) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int c = e->p->m->n_classes, nb = overlap_blocks(e->p, t), jac = t->kind == LOSS_JACCARD;
  long rows = (long)e->p->batch * elems(t->a) / c;
  bool weighted = e->cw_at[i] >= 0;
  const char *cwp = weighted ? ", " CF "cw" : "", *wi = weighted ? "(double)cw[i]" : "1.0";
  OUT("/* %s_part: per class the partial inter, card and count of each block; launch %d blocks of 256 */\n", ln, nb);
  OUT(GLOBAL "%s_part(" CF "logits, " CF "t, double *part) {\n  for (int i = 0; i < %d; i++) {\n    double in = 0, cd = 0, ct = 0;\n"
      "    for (long r = blockIdx.x * (long)AECD_THREADS + threadIdx.x; r < %ldL; r += %dL * AECD_THREADS) {\n"
      "      int k = (int)t[r];\n      if (k < 0 || k >= %d) continue;\n  %s"
      "      double p = (float)(expf(x[i] - mx) / sum);\n      cd += p;\n      if (k == i) in += p, ct += 1;\n    }\n"
      "    in = aecd_block_total(in), cd = aecd_block_total(cd), ct = aecd_block_total(ct);\n"
      "    if (threadIdx.x == 0) part[(blockIdx.x * %d + i) * 3] = in, part[(blockIdx.x * %d + i) * 3 + 1] = cd, part[(blockIdx.x * %d + i) * 3 + 2] = ct;\n"
      "  }\n}\n", ln, c, rows, nb, c, ae_sprintf(e->a, "    %s", softmax_head(e, c)), c, c, c);
  OUT("/* %s_score: the loss and per class dL/dnum and dL/dden from the parts; launch 1 block */\n", ln);
  OUT(GLOBAL "%s_score(const double *part%s, double *out) {\n  if (threadIdx.x) return;\n  double wsum = 0, loss = 0;\n"
      "  for (int i = 0; i < %d; i++) wsum += %s;\n  for (int i = 0; i < %d; i++) {\n    double in = 0, cd = 0, ct = 0;\n"
      "    for (int b = 0; b < %d; b++) in += part[(b * %d + i) * 3], cd += part[(b * %d + i) * 3 + 1], ct += part[(b * %d + i) * 3 + 2];\n"
      "    double s = cd + ct, num = %d * in + %.17g, den = %s + %.17g, d = den > 1e-7 ? den : 1e-7;\n"
      "    double a = wsum > 0 ? %s * (ct > 0) / wsum : 0;\n    loss += a * (1 - num / d);\n"
      "    out[1 + i] = -a / d;\n    out[%d + i] = den > 1e-7 ? a * num / (d * d) : 0;\n  }\n  out[0] = loss;\n}\n",
      ln, cwp, c, wi, c, nb, c, c, c, jac ? 1 : 2, t->smooth, jac ? "s - in" : "s", t->smooth, wi, 1 + c);
  OUT(GLOBAL "%s_bwd(" CF "logits, " CF "t, const double *dscore, " F "dl) {\n  AECD_FOR(r, %ldL) {\n"
      "    int k = (int)t[r];\n    if (k < 0 || k >= %d) continue;\n    %s    double dot = 0;\n"
      "    for (int i = 0; i < %d; i++) dot += (dscore[1 + i] * %s + dscore[%d + i] * %s) * (float)(expf(x[i] - mx) / sum);\n"
      "    for (int i = 0; i < %d; i++) {\n      float p = (float)(expf(x[i] - mx) / sum);\n"
      "      dl[r * %d + i] += %s * (float)(p * (dscore[1 + i] * %s + dscore[%d + i] * %s - dot));\n    }\n  }\n}\n",
      ln, rows, c, softmax_head(e, c), c, jac ? "(i == k)" : "2 * (i == k)", 1 + c, jac ? "(i != k)" : "1", c, c, flt(e, t->weight),
      jac ? "(i == k)" : "2 * (i == k)", 1 + c, jac ? "(i != k)" : "1");
}

static void emit_loss_kernels(emitter *e, int i) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int B = e->p->batch;
  long n = t->a ? (long)B * elems(t->a) : 0;
  const char *W = flt(e, t->weight), *ln = ae_sprintf(e->a, "loss%d", i);
  OUT("\n/* %s:%d: %g * %s */\n", t->loc.src->path, t->loc.line, t->weight, ae_loss_name(t->kind));
  switch (t->kind) {
  case LOSS_MSE:
    emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), CF "a, " CF "b", n, "double d = (double)a[i] - b[i]; return d * d;");
    OUT(GLOBAL "%s_bwd(" CF "a, " CF "b, float *da, float *db, float g) {\n  AECD_FOR(i, %ldL) {\n"
        "    if (da) da[i] += g * (a[i] - b[i]);\n    if (db) db[i] -= g * (a[i] - b[i]);\n  }\n}\n", ln, n);
    break;
  case LOSS_BCE:
    emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), CF "p, " CF "t", n,
                    "float lp = p[i] > 0 ? logf(p[i]) : -100.0f, lq = p[i] < 1 ? logf(1 - p[i]) : -100.0f;\n"
                    "    return -(t[i] * (double)(lp < -100 ? -100.0f : lp) + (1 - t[i]) * (double)(lq < -100 ? -100.0f : lq));");
    OUT(GLOBAL "%s_bwd(" CF "p, " CF "t, " F "dp, float g) {\n  AECD_FOR(i, %ldL) {\n    float q = p[i] * (1 - p[i]);\n"
        "    dp[i] += g * (p[i] - t[i]) / (q > 1e-12f ? q : 1e-12f);\n  }\n}\n", ln, n);
    break;
  case LOSS_SOFTMAX_XENT: case LOSS_FOCAL: emit_focal(e, i, ln); break;
  case LOSS_DICE: case LOSS_JACCARD: emit_overlap(e, i, ln); break;
  case LOSS_KL_NORMAL:
    emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), CF "mu, " CF "lv", n,
                    "return -0.5 * (1.0 + lv[i] - (double)mu[i] * mu[i] - expf(lv[i]));");
    OUT(GLOBAL "%s_bwd(" CF "mu, " CF "lv, float *dmu, float *dlv) {\n  AECD_FOR(i, %ldL) {\n    if (dmu) dmu[i] += %s * mu[i] / %d;\n"
        "    if (dlv) dlv[i] += %s * -0.5f * (1 - expf(lv[i])) / %d;\n  }\n}\n", ln, n, W, B, W, B);
    break;
  case LOSS_KL_SPARSITY: {   /* per unit: its mean activation over the batch, in batch order */
    long units = elems(t->a);
    const char *mean = ae_sprintf(e->a, "double m = 0;\n    for (int b = 0; b < %d; b++) m += z[(long)b * %ld + j];\n    m /= %d;\n"
                                        "    if (m < 1e-7) m = 1e-7;\n    if (m > 1 - 1e-7) m = 1 - 1e-7;\n    const float rho = %s;\n",
                                  B, units, B, flt(e, t->rho));
    emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), CF "z", units,
                    ae_sprintf(e->a, "long j = i;\n    %s    return rho * log(rho / m) + (1 - rho) * log((1 - rho) / (1 - m));", mean));
    OUT(GLOBAL "%s_bwd(" CF "z, " F "dz) {\n  AECD_FOR(i, %ldL) {\n    long j = i %% %ld;\n    %s"
        "    dz[i] += (float)(%s * (-rho / m + (1 - rho) / (1 - m)) / %d);\n  }\n}\n", ln, n, units, mean, W, B);
    break;
  }
  case LOSS_L1:
    emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum", ln), CF "z", n, "return (double)fabsf(z[i]);");
    OUT(GLOBAL "%s_bwd(" CF "z, " F "dz) {\n  AECD_FOR(i, %ldL) dz[i] += %s / %d * (float)((z[i] > 0) - (z[i] < 0));\n}\n", ln, n, W, B);
    break;
  case LOSS_L2:
    for (int j = 0, s = 0; j < e->p->params.len; j++) {
      const ae_tensor *w = e->p->params.items[j];
      if (!w->is_weight || w->frozen) continue;
      emit_sum_kernel(e, ae_sprintf(e->a, "%s_sum%d", ln, s), CF "w", w->size, "return (double)w[i] * w[i];");
      OUT(GLOBAL "%s_bwd%d(" CF "w, " F "dw) {\n  AECD_FOR(i, %ldL) dw[i] += 2 * %s * w[i];\n}\n", ln, s, w->size, W);
      s++;
    }
    break;
  default: break;
  }
}

/* The host half of the loss, per term i: its gradient launches (backward), its sum
 * launches (forward) and the division of its sums, as the C target's loss functions do. */
static const char *weights_arg(emitter *e, int i) {
  return e->cw_at[i] >= 0 ? ae_sprintf(e->a, ", r->cw + %d", e->cw_at[i]) : "";
}

/* Dice's and jaccard's parts and score into r->sums (both passes launch them). */
static void emit_overlap_launches(emitter *e, int i, const char *indent) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int s0 = e->slot[i], c = e->p->m->n_classes, parts = s0 + 1 + 2 * c;
  OUT("%sAEC_LAUNCH(loss%d_part, dim3(%d), AECD_THREADS, 0, r->stream, %s, %s, r->sums + %d);\n", indent, i, overlap_blocks(e->p, t), val(e, t->a),
      val(e, t->b), parts);
  OUT("%sAEC_LAUNCH(loss%d_score, dim3(1), AECD_THREADS, 0, r->stream, r->sums + %d%s, r->sums + %d);\n", indent, i, parts, weights_arg(e, i), s0);
}

static void emit_loss_grad_launch(emitter *e, int i) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  long n = t->a ? (long)e->p->batch * elems(t->a) : 0;
  double denom = t->reduce_sum ? e->p->batch : (double)n;
  int s0 = e->slot[i];
  const char *a = t->a ? val(e, t->a) : "", *b = t->b ? val(e, t->b) : "";
  bool has_da = t->a && has_grad(e, t->a);
  const char *da = has_da ? grad(e, t->a) : "(float *)NULL", *db = t->b && has_grad(e, t->b) ? grad(e, t->b) : "(float *)NULL";
  const char *g = ae_sprintf(e->a, "loss%d_bwd, dim3(%ld), AECD_THREADS, 0, r->stream", i, ew_blocks(n));
  switch (t->kind) {
  case LOSS_MSE: OUT("    AEC_LAUNCH(%s, %s, %s, %s, %s, (float)(2.0 * %.9g / %.1f));\n", g, a, b, da, db, t->weight, denom); break;
  case LOSS_BCE: if (has_da) OUT("    AEC_LAUNCH(%s, %s, %s, %s, (float)(%.9g / %.1f));\n", g, a, b, da, t->weight, denom); break;
  case LOSS_DICE: case LOSS_JACCARD:
    if (has_da) {
      emit_overlap_launches(e, i, "    ");
      OUT("    AEC_LAUNCH(loss%d_bwd, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s, r->sums + %d, %s);\n", i, ew_blocks(n / e->p->m->n_classes), a, b,
          s0, da);
    }
    break;
  case LOSS_SOFTMAX_XENT: case LOSS_FOCAL:
    if (has_da)
      OUT("    AEC_LAUNCH(loss%d_wsum, dim3(1), AECD_THREADS, 0, r->stream, %s%s, r->sums + %d);\n"
          "    AEC_LAUNCH(loss%d_bwd, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s%s, %s, r->sums + %d, shard->global_denom[%d]);\n",
          i, b, weights_arg(e, i), s0 + 1, i, ew_blocks(n / e->p->m->n_classes), a, b, weights_arg(e, i), da, s0 + 1, i);
    break;
  case LOSS_KL_NORMAL: OUT("    AEC_LAUNCH(%s, %s, %s, %s, %s);\n", g, a, b, da, db); break;
  case LOSS_L1: case LOSS_KL_SPARSITY: if (has_da) OUT("    AEC_LAUNCH(%s, %s, %s);\n", g, a, da); break;
  case LOSS_L2:
    for (int j = 0, s = 0; j < e->p->params.len; j++) {
      const ae_tensor *w = e->p->params.items[j];
      if (!w->is_weight || w->frozen) continue;
      OUT("    AEC_LAUNCH(loss%d_bwd%d, dim3(%ld), AECD_THREADS, 0, r->stream, %s, %s);\n", i, s, ew_blocks(w->size), pval(e, w), pgrad(e, w));
      s++;
    }
    break;
  default: break;
  }
}

static void emit_loss_sum_launch(emitter *e, int i) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int s0 = e->slot[i];
  const char *a = t->a ? val(e, t->a) : "", *b = t->b ? val(e, t->b) : "";
  switch (t->kind) {
  case LOSS_DICE: case LOSS_JACCARD: emit_overlap_launches(e, i, "  "); break;
  case LOSS_SOFTMAX_XENT: case LOSS_FOCAL:
    OUT("  AEC_LAUNCH(loss%d_wsum, dim3(1), AECD_THREADS, 0, r->stream, %s%s, r->sums + %d);\n", i, b, weights_arg(e, i), s0 + 1);
    OUT("  AEC_LAUNCH(loss%d_sum, dim3(1), AECD_THREADS, 0, r->stream, %s, %s%s, r->sums + %d);\n", i, a, b, weights_arg(e, i), s0);
    break;
  case LOSS_MSE: case LOSS_BCE: case LOSS_KL_NORMAL:
    OUT("  AEC_LAUNCH(loss%d_sum, dim3(1), AECD_THREADS, 0, r->stream, %s, %s, r->sums + %d);\n", i, a, b, s0);
    break;
  case LOSS_L1: case LOSS_KL_SPARSITY: OUT("  AEC_LAUNCH(loss%d_sum, dim3(1), AECD_THREADS, 0, r->stream, %s, r->sums + %d);\n", i, a, s0); break;
  case LOSS_L2:
    for (int j = 0, s = 0; j < e->p->params.len; j++) {
      const ae_tensor *w = e->p->params.items[j];
      if (!w->is_weight || w->frozen) continue;
      OUT("  AEC_LAUNCH(loss%d_sum%d, dim3(1), AECD_THREADS, 0, r->stream, %s, r->sums + %d);\n", i, s, pval(e, w), s0 + s);
      s++;
    }
    break;
  default: break;
  }
}

/* t, the term's value, and its normaliser on this rank (shard.denom), from its sums. */
static void emit_loss_term(emitter *e, int i) {
  const ae_loss_term *t = e->p->m->losses.items[i];
  int B = e->p->batch, s0 = e->slot[i];
  long n = t->a ? (long)B * elems(t->a) : 0;
  double denom = t->reduce_sum ? B : (double)n;
  OUT("  /* %s:%d: %g * %s */\n", t->loc.src->path, t->loc.line, t->weight, ae_loss_name(t->kind));
  switch (t->kind) {
  case LOSS_MSE: case LOSS_BCE: OUT("  t = (float)(sums[%d] / %.1f);\n  denom[%d] = %.1f;\n", s0, denom, i, denom); break;
  case LOSS_SOFTMAX_XENT: case LOSS_FOCAL:
    OUT("  denom[%d] = %s;\n  t = denom[%d] > 0 ? (float)(sums[%d] / denom[%d]) : 0;\n", i,
        t->reduce_sum ? ae_sprintf(e->a, "%d.0", B) : ae_sprintf(e->a, "sums[%d]", s0 + 1), i, s0, i);
    break;
  case LOSS_KL_NORMAL: case LOSS_L1: OUT("  t = (float)(sums[%d] / %d);\n  denom[%d] = %d.0;\n", s0, B, i, B); break;
  case LOSS_KL_SPARSITY: case LOSS_DICE: case LOSS_JACCARD: OUT("  t = (float)sums[%d];\n  denom[%d] = %d.0;\n", s0, i, B); break;
  case LOSS_L2:
    OUT("  t = 0;\n");
    for (int s = 0; s < slots_of(e->p, t); s++) OUT("  t += (float)sums[%d];\n", s0 + s);
    OUT("  denom[%d] = 1.0;\n", i);
    break;
  default: break;
  }
  OUT("  if (out) out->term[%d] = t;\n  total += %.9g * t;\n", i, t->weight);
}

static void emit_compute_loss(emitter *e) {
  const ae_model *m = e->p->m;
  OUT("\n/* The loss: forward, each term's sums, copied (without waiting) into r->sums_host, pinned host\n"
      " * memory; backward, the gradients of the operands seeded. */\n");
  OUT("static void loss_kernels(const run *r, int backward) {\n  if (backward) {\n");
  for (int i = 0; i < m->losses.len; i++) emit_loss_grad_launch(e, i);
  OUT("    return;\n  }\n");
  for (int i = 0; i < m->losses.len; i++) emit_loss_sum_launch(e, i);
  OUT("  AEC_CHECK(cudaMemcpyAsync(r->sums_host, r->sums, sizeof(double) * AEC_LOSS_SUMS, cudaMemcpyDeviceToHost, r->stream));\n}\n\n");
  OUT("/* The loss from the sums the forward copied back (once its stream finished), divided as the C\n"
      " * target does. */\nstatic float loss_of(const double *sums, aert_losses *out) {\n  float total = 0, t;\n  (void)t;\n  (void)sums;\n");
  OUT("  double none[%d] = {0}, *denom = out ? shard->denom : none;   /* each term's normaliser on this rank */\n  (void)denom;\n",
      m->losses.len ? m->losses.len : 1);
  for (int i = 0; i < m->losses.len; i++) emit_loss_term(e, i);
  OUT("  if (out) out->total = total;\n  return total;\n}\n");
}

/* ---- the run: device pointers named as model.c names its buffers -------------------- */

static void emit_run(emitter *e) {
  OUT("\n/* The run a kernel launch sees: device pointers to the parameters, their gradients, the\n"
      " * arena (laid out as model.c's; `aec dump --stage mem` prints it), the batch and the\n"
      " * loss's sums, and one pointer per buffer of the arena, named as in model.c. */\n");
  OUT("#define AEC_LOSS_SUMS %d       /* doubles of r->sums */\n#define AEC_CLASS_WEIGHTS %d   /* floats of r->cw */\n",
      e->n_slots ? e->n_slots : 1, e->n_cw ? e->n_cw : 1);
  OUT("typedef struct {\n  const float *P;\n  float *G, *A;\n  const float *X, *T;\n"
      "  const uint64_t *seed;   /* the step's seed, in device memory: a graph replays each step's */\n  int training;\n  uint64_t first;\n"
      "  double *sums, *sums_host;   /* the loss's sums on the device, and their copy in pinned host memory */\n"
      "  const float *cw;   /* the class weights of the class losses */\n  cudaStream_t stream;   /* every launch and copy of the drivers */\n");
  for (int i = 0; i < e->n_bufs; i++) OUT("  float *%s;\n", e->bufs[i].ident);
  OUT("} run;\n\nstatic run place(const float *P, float *G, float *A, const float *X, const float *T, const uint64_t *seed,\n"
      "                 int training, uint64_t first, double *sums, double *sums_host, const float *cw, cudaStream_t stream) {\n"
      "  run r = {P, G, A, X, T, seed, training, first, sums, sums_host, cw, stream");
  for (int i = 0; i < e->n_bufs; i++) OUT(",\n             A + %ld", e->bufs[i].b->off);
  OUT("};\n  return r;\n}\n");
}

/* ---- the drivers -------------------------------------------------------------------- */

/* The forward and backward launches, walking the steps: a kernel's backward steps are its
 * one function, a zero step a memset, the loss's gradient loss_kernels. */
static void emit_drivers(emitter *e, const char **names) {
  const ae_program *p = e->p;
  OUT("\n/* ---- the drivers: every launch of a step, on r->stream; only device pointers, so that a\n"
      " * stream capture records them into a graph that replays every step */\n");
  OUT("static void forward_kernels(const run *r) {\n");
  int i = 0;
  for (; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i];
    if (st->kind == STEP_FORWARD) OUT("  %s_forward(r);\n", names[st->k->id]);
    if (st->kind == STEP_LOSS) break;
  }
  OUT("  loss_kernels(r, 0);\n}\n\n");
  OUT("/* Gradients accumulate (+=) into buffers zeroed just before their first use. */\n");
  OUT("static void backward_kernels(const run *r) {\n");
  for (i++; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i], *prev = p->steps.items[i - 1];
    if (st->kind == STEP_ZERO_PARAM_GRADS) OUT("  AEC_CHECK(cudaMemsetAsync(r->G, 0, sizeof(float) * %ld, r->stream));\n", p->param_floats);
    else if (st->kind == STEP_ZERO) OUT("  AEC_CHECK(cudaMemsetAsync(r->%s, 0, sizeof(float) * %ld, r->stream));\n", buf_name(e, st->buf), st->buf->size);
    else if (st->kind == STEP_LOSS_GRAD) OUT("  loss_kernels(r, 1);\n");
    else if (st->k && st->k != prev->k) OUT("  %s_backward(r);\n", names[st->k->id]);
  }
  OUT("}\n");
}

/* ---- the optimizer and the gradient sums: kernels over the parameter arena ----------
 * Every value of the arena but the frozen tensors' (the padding between tensors has zero
 * gradients and stays zero), as runtime/optim.c loops over the trainable tensors. */
static void emit_frozen_skips(emitter *e, const char *indent) {
  const ae_program *p = e->p;
  for (int i = 0; i < p->params.len; i++) {
    const ae_tensor *t = p->params.items[i];
    if (t->frozen) OUT("%sif (i >= %ld && i < %ld) continue;   /* %s, frozen */\n", indent, t->offset, t->offset + t->size, t->name);
  }
}

static void emit_trainable_loop(emitter *e, const char *name, const char *params, const char *body) {
  OUT(GLOBAL "%s(%s) {\n  AECD_FOR(i, %ldL) {\n", name, params, e->p->param_floats);
  emit_frozen_skips(e, "    ");
  OUT("    %s\n  }\n}\n\n", body);
}

/* The clipping on the device, bit for bit optim.c's aert_clip_grad_norm: grad_norm_part, a
 * thread per chunk of AERT_NORM_CHUNK floats summing its trainable squares in order in double;
 * grad_clip_scale, one thread adding the chunks' sums in order, then the norm and the scale
 * (1 when the norm is within the limit) and the norm; grad_scale_at multiplies by it. */
static void emit_clip_kernels(emitter *e) {
  long n = e->p->param_floats;
  OUT("/* grad_norm_part: AEC_NORM_CHUNKS chunks, a thread each (launch AEC_NORM_CHUNKS / 256 blocks, rounded up);\n"
      " * grad_clip_scale: 1 thread; grad_scale_at: %ld blocks of 256 */\n"
      "#define AEC_NORM_CHUNKS ((%ldL + AERT_NORM_CHUNK - 1) / AERT_NORM_CHUNK)\n", ew_blocks(n), n);
  OUT(GLOBAL "grad_norm_part(const float *g, double *part) {\n  AECD_FOR(c, AEC_NORM_CHUNKS) {\n"
      "    double s = 0;\n    long end = (c + 1) * AERT_NORM_CHUNK < %ldL ? (c + 1) * AERT_NORM_CHUNK : %ldL;\n"
      "    for (long i = c * AERT_NORM_CHUNK; i < end; i++) {\n", n, n);
  emit_frozen_skips(e, "      ");
  OUT("      s += (double)g[i] * g[i];\n    }\n    part[c] = s;\n  }\n}\n\n");
  OUT(GLOBAL "grad_clip_scale(const double *part, float clip, float *scale, double *norm) {\n  if (blockIdx.x != 0 || threadIdx.x != 0) return;\n"
      "  double sum = 0;\n  for (long c = 0; c < AEC_NORM_CHUNKS; c++) sum += part[c];\n"
      "  *norm = sqrt(sum);\n  double coef = clip / (*norm + 1e-6);\n  *scale = coef < 1.0 ? (float)coef : 1.0f;\n}\n\n");
  emit_trainable_loop(e, "grad_scale_at", "float *g, const float *f", "g[i] *= *f;");
}

/* The finite check of the gradient arena on the device: each of up to 256 blocks finds the
 * first offset of its grid-stride share that holds a NaN or an infinity (its threads' firsts
 * reduced by a min, exact in any order), one block the first of the blocks' and its value:
 * the trainer's message without copying the arena. */
static int nonfinite_blocks(const ae_program *p) {
  long b = ew_blocks(p->param_floats);
  return (int)(b < 256 ? b : 256);
}

static void emit_nonfinite_check(emitter *e) {
  const ae_program *p = e->p;
  OUT("\n/* nonfinite_part, nonfinite_first: the first NaN or infinity of the %ld gradient floats (-1:\n"
      " * none), into at[0] and the bits of its value into at[1]; launch %d blocks, then 1 */\n",
      p->param_floats, nonfinite_blocks(p));
  OUT("#define AEC_NONFINITE_BLOCKS %d\n#define AEC_NONE 0x7fffffffffffffffLL   /* no offset */\n", nonfinite_blocks(p));
  OUT("__device__ __forceinline__ bool aec_nonfinite(float v) { return (__float_as_int(v) & 0x7f800000) == 0x7f800000; }\n");
  OUT("__device__ __forceinline__ void aec_min_tree(long long *first) {\n"
      "  for (int s = AECD_THREADS / 2; s > 0; s /= 2) {\n    __syncthreads();\n"
      "    if ((int)threadIdx.x < s && first[threadIdx.x + s] < first[threadIdx.x]) first[threadIdx.x] = first[threadIdx.x + s];\n  }\n}\n");
  OUT(GLOBAL "nonfinite_part(const float *g, long long *part) {\n  __shared__ long long first[AECD_THREADS];\n"
      "  long long f = AEC_NONE;\n  AECD_FOR(i, %ldL) {\n    if (aec_nonfinite(g[i])) { f = i; break; }\n  }\n"
      "  first[threadIdx.x] = f;\n  aec_min_tree(first);\n  if (threadIdx.x == 0) part[blockIdx.x] = first[0];\n}\n\n", p->param_floats);
  OUT(GLOBAL "nonfinite_first(const float *g, const long long *part, long long *at) {\n  __shared__ long long first[AECD_THREADS];\n"
      "  first[threadIdx.x] = (int)threadIdx.x < AEC_NONFINITE_BLOCKS ? part[threadIdx.x] : AEC_NONE;\n  aec_min_tree(first);\n"
      "  if (threadIdx.x == 0) {\n    at[0] = first[0] == AEC_NONE ? -1 : first[0];\n"
      "    at[1] = first[0] == AEC_NONE ? 0 : (long long)__float_as_int(g[first[0]]);\n  }\n}\n");
}

static void emit_optimizer(emitter *e) {
  const ae_program *p = e->p;
  long n = p->param_floats;
  OUT("\n/* optim_step: %s over the %ld parameter floats (frozen tensors skipped), as runtime/optim.c;\n"
      " * launch %ld blocks of 256 */\n", ae_optimizers.names[p->m->opt.kind], n, ew_blocks(n));
  emit_trainable_loop(e, "optim_step", "float *p, const float *g, float *m, float *v, aecd_optim o", "aecd_optim_update(o, p, g, m, v, i);");
  OUT("/* optim_step_at: the same step with its settings read from device memory (the step block),\n"
      " * so that a captured graph takes each step's learning rate and bias corrections */\n");
  emit_trainable_loop(e, "optim_step_at", "float *p, const float *g, float *m, float *v, const aecd_optim *o",
                      "aecd_optim_update(*o, p, g, m, v, i);");
  OUT("/* grad_accumulate: aert_grad_accumulate, sets (first) or adds g into s; grad_scale: g *= f,\n"
      " * as optim.c scales for the mean and the clipping; launch %ld blocks of 256 each */\n", ew_blocks(n));
  emit_trainable_loop(e, "grad_accumulate", "float *s, const float *g, int first", "s[i] = first ? g[i] : s[i] + g[i];");
  emit_trainable_loop(e, "grad_scale", "float *g, float f", "g[i] *= f;");
  emit_clip_kernels(e);
  OUT("/* One optimizer step on device buffers: P, G and the state m (and v for Adam) of %ld floats;\n"
      " * step counts from 1, as aert_optimizer's after its increment. */\n"
      "void aec_cuda_optim_step(float *P, const float *G, float *m, float *v, const aert_optim *h, long step, float lr) {\n"
      "  AEC_LAUNCH(optim_step, dim3(%ld), AECD_THREADS, 0, 0, P, G, m, v, aecd_optim_of(h, step, lr));\n}\n", n, ew_blocks(n));
  emit_nonfinite_check(e);
}

/* ---- the host glue: the device (runtime/device.h) --------------------------------------
 * Parameters, gradients, gradient sums, optimizer moments and the arena live in device
 * memory for the whole run; the runtime sees them through host views that upload and
 * download fill when it says so. A training step copies the batch in (or only its example
 * indices, when the device keeps the IDX training set: runtime/aert_cuda_data.h, which also
 * owns the batch buffers and the copy stream of host batches), and out only the loss's sums
 * and the finite check's answer; its phases (forward, backward with the check, the optimizer
 * with the clipping) are CUDA graphs replayed on one compute stream, their per-step values
 * in the step block, one graph a batch buffer for the phases that read the batch. The decoder
 * alone (sample, interpolate) runs model.c's kernels on the host, on a downloaded copy of the
 * parameters. */
static bool any_auto_weights(const ae_model *m) {
  for (int i = 0; i < m->losses.len; i++)
    if (((ae_loss_term *)m->losses.items[i])->auto_weights) return true;
  return false;
}

static void emit_class_weights(emitter *e) {
  const ae_model *m = e->p->m;
  if (!e->n_cw) return;
  OUT("/* The class weights of the class losses, uploaded with the parameters: constants, or for\n"
      " * weights = auto what the trainer sets from the class frequencies. */\nstatic float class_weights[%d] = {", e->n_cw);
  for (int i = 0, first = 1; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    for (int j = 0; e->cw_at[i] >= 0 && j < m->n_classes; j++, first = 0)
      OUT("%s%s", first ? "" : ", ", t->auto_weights ? "1.0f" : flt(e, t->class_weights[j]));
  }
  OUT("};\n");
  if (!any_auto_weights(m)) return;
  OUT("static void cuda_set_class_weights(const float *w) {\n");
  for (int i = 0; i < m->losses.len; i++)
    if (((ae_loss_term *)m->losses.items[i])->auto_weights)
      OUT("  memcpy(class_weights + %d, w, sizeof(float) * %d);\n", e->cw_at[i], m->n_classes);
  OUT("}\n");
}

/* The device's state and its open and close. */
static void emit_device_memory(emitter *e) {
  const ae_program *p = e->p;
  const ae_model *m = p->m;
  long in = elems(m->input), tg = m->target ? elems(m->target) : 0;
  OUT("\n/* The step block: what changes from one step to the next (read by the kernels from device\n"
      " * memory, so that a replayed graph computes what plain launches compute) and the few values\n"
      " * the finite check copies back. One on the device, one in pinned host memory. */\n"
      "typedef struct {\n  uint64_t seed;            /* the step's seed: dropout, noise, sampling */\n"
      "  aecd_optim optim;         /* the optimizer step's learning rate, bias corrections, ... */\n"
      "  long long nonfinite[2];   /* the check: the first bad offset of the gradients (-1: none), its value's bits */\n"
      "  double grad_norm;         /* the clipping's norm of this step */\n"
      "  float clip_scale;         /* the clipping's factor of this step (1: within the limit) */\n"
      "  long long part[AEC_NONFINITE_BLOCKS];   /* the check's first per block */\n} step_block;\n\n");
  OUT("/* The graphs of a run: each phase of a step, captured on the compute stream at its first call. */\n"
      "enum { GRAPH_TRAIN, GRAPH_EVAL, GRAPH_BACKWARD, GRAPH_STEP, GRAPH_STEP_SUMS, GRAPHS };\n"
      "/* The phases that read the batch (forward, backward) have one graph a batch buffer of the feed. */\n");
  OUT("\ntypedef struct {\n  float *P, *G, *A, *cw, *gsum, *m, *v;   /* device memory */\n  double *sums, *sums_host;   /* the loss's sums, and their pinned host copy */\n"
      "  double *norm_part;        /* with clip: the chunks' sums of squares of the gradient norm */\n"
      "  float clip;               /* the clipping's limit, 0: none */\n"
      "  step_block *step, *step_host;   /* the step block on the device and in pinned host memory */\n"
      "  aecd_feed feed;           /* the batches' buffers, and a kept set (aert_cuda_data.h) */\n"
      "  cudaStream_t stream;      /* the compute stream: forward, backward, check and optimizer (and the feed's gather) */\n"
      "  cudaGraphExec_t graph[GRAPHS][2];   /* captured at a phase's first call on a batch buffer, replayed after */\n"
      "  int use_graphs;           /* 0 with AEC_CUDA_GRAPH=0: plain launches */\n"
      "  unsigned char planned[GRAPHS];   /* --gemm cublaslt: the phase ran once plainly (its plans made) */\n"
      "  int checked;              /* whether the check ran on the current gradients */\n"
      "  aert_optimizer opt;       /* the host view of the optimizer state */\n"
      "  float *grads, *out, *lat;   /* host copies of the gradients, the output and the latent */\n"
      "  float *host_arena;        /* the decoder's, on the host (allocated by the first decode) */\n"
      "  int grads_here, out_here, lat_here, decoded;   /* which host copies are current */\n} cuda_device;\n\n");
  OUT("/* n zeroed floats of device memory in *p; -1 with a message when there is not enough. */\n"
      "template <class T> static int device_zeros(T **p, long n, const char *what) {\n"
      "  size_t bytes = sizeof(T) * (size_t)(n > 0 ? n : 1);\n"
      "  if (cudaMalloc(p, bytes) != cudaSuccess) {\n    *p = NULL;\n"
      "    aert_error(\"out of device memory for %%s (%%zu bytes)\", what, bytes);\n    return -1;\n  }\n"
      "  AEC_CHECK(cudaMemset(*p, 0, bytes));\n  return 0;\n}\n\n");
  OUT("/* n zeroed values of pinned host memory (what a graph's copy reads or writes) in *p. */\n"
      "template <class T> static int pinned_zeros(T **p, long n, const char *what) {\n"
      "  size_t bytes = sizeof(T) * (size_t)(n > 0 ? n : 1);\n"
      "  if (cudaMallocHost(p, bytes) != cudaSuccess) {\n    *p = NULL;\n"
      "    aert_error(\"out of pinned host memory for %%s (%%zu bytes)\", what, bytes);\n    return -1;\n  }\n"
      "  memset(*p, 0, bytes);\n  return 0;\n}\n\n");
  OUT("/* Graphs unless AEC_CUDA_GRAPH=0 (plain launches, to debug); -1 for another value. */\n"
      "static int graphs_wanted(void) {\n  const char *v = getenv(\"AEC_CUDA_GRAPH\");\n"
      "  if (!v || !strcmp(v, \"1\")) return 1;\n  if (!strcmp(v, \"0\")) return 0;\n"
      "  aert_error(\"AEC_CUDA_GRAPH must be 1 (replay each step's captured graph, the default) or 0 (plain launches), got '%%s'\", v);\n"
      "  return -1;\n}\n\n");
  OUT("static int cuda_open(aert_device *d) {\n  cuda_device *c = (cuda_device *)aert_alloc(sizeof *c, \"the CUDA device\");\n"
      "  if (!(d->own = c)) return -1;\n  memset(c, 0, sizeof *c);\n"
      "  d->params = (float *)aert_alloc(sizeof(float) * %ldL, \"the parameters' host view\");\n"
      "  c->out = (float *)aert_alloc(sizeof(float) * %ldL, \"the output's host copy\");\n"
      "  if (!d->params || !c->out || device_zeros(&c->P, %ldL, \"the parameters\") || device_zeros(&c->A, %ldL, \"the arena\") ||\n"
      "      aecd_feed_open(&c->feed, %d, %ldL, %ldL) ||\n"
      "      device_zeros(&c->sums, %d, \"the loss's sums\") || device_zeros(&c->cw, %d, \"the class weights\") ||\n"
      "      device_zeros(&c->step, 1, \"the step block\") || pinned_zeros(&c->step_host, 1, \"the step block\") ||\n"
      "      pinned_zeros(&c->sums_host, AEC_LOSS_SUMS, \"the loss's sums\") || (c->use_graphs = graphs_wanted()) < 0)\n    return -1;\n"
      "  AEC_CHECK(cudaStreamCreate(&c->stream));\n  c->feed.compute = c->stream;   /* the feed's waits and gathers on the compute stream */\n",
      p->param_floats, (long)p->batch * elems(m->output), p->param_floats, p->arena_floats, p->batch, in, tg, e->n_slots, e->n_cw);
  if (m->latent)
    OUT("  if (!(c->lat = (float *)aert_alloc(sizeof(float) * %ldL, \"the latent's host copy\"))) return -1;\n", (long)p->batch * elems(m->latent));
  OUT("  if (!d->training) return 0;\n  if (aert_optim_init(&c->opt, d->m) != 0) return -1;\n  d->opt = &c->opt;\n"
      "  c->grads = (float *)aert_alloc(sizeof(float) * %ldL, \"the gradients' host copy\");\n"
      "  if (!c->grads || device_zeros(&c->G, %ldL, \"the gradients\") || device_zeros(&c->m, %ldL, \"the optimizer state\"))\n    return -1;\n"
      "  if (c->opt.v && device_zeros(&c->v, %ldL, \"the optimizer state\")) return -1;\n"
      "  if (d->m->optim.accumulate > 1 && device_zeros(&c->gsum, %ldL, \"the gradient sums\")) return -1;\n"
      "  if ((c->clip = d->m->optim.clip_norm) > 0 && device_zeros(&c->norm_part, AEC_NORM_CHUNKS, \"the gradient norm's sums\")) return -1;\n"
      "  return 0;\n}\n\n",
      p->param_floats, p->param_floats, p->param_floats, p->param_floats, p->param_floats);
  OUT("static void cuda_close(aert_device *d) {\n  cuda_device *c = (cuda_device *)d->own;\n  free(d->params);\n  if (c) {\n"
      "    float *dev[] = {c->P, c->G, c->A, c->cw, c->gsum, c->m, c->v};\n"
      "    for (float *q : dev) if (q) AEC_CHECK(cudaFree(q));\n    if (c->sums) AEC_CHECK(cudaFree(c->sums));\n    aecd_feed_close(&c->feed);\n"
      "    if (c->step) AEC_CHECK(cudaFree(c->step));\n    if (c->norm_part) AEC_CHECK(cudaFree(c->norm_part));\n    for (auto &gs : c->graph) for (cudaGraphExec_t g : gs) if (g) AEC_CHECK(cudaGraphExecDestroy(g));\n"
      "    if (c->stream) AEC_CHECK(cudaStreamDestroy(c->stream));\n"
      "    if (c->step_host) AEC_CHECK(cudaFreeHost(c->step_host));\n    if (c->sums_host) AEC_CHECK(cudaFreeHost(c->sums_host));\n"
      "    free(c->grads);\n    free(c->out);\n    free(c->lat);\n    free(c->host_arena);\n    aert_optim_free(&c->opt);\n    free(c);\n  }\n"
      "  d->params = NULL;\n  d->opt = NULL;\n  d->own = NULL;\n}\n\n");
}

/* One cudaMemcpy of n floats, its direction named as CUDA names it. */
static void emit_copy(emitter *e, const char *to, const char *from, const char *n, const char *dir) {
  OUT("  AEC_CHECK(cudaMemcpy(%s, %s, sizeof(float) * %s, cudaMemcpy%s));\n", to, from, n, dir);
}

/* upload and download: the parameters and the optimizer's moments (its step count stays on
 * the host); the class weights go up with the parameters. */
static void emit_device_transfers(emitter *e) {
  const ae_program *p = e->p;
  const char *n = ae_sprintf(e->a, "%ldL", p->param_floats);
  for (int up = 1; up >= 0; up--) {
    const char *dir = up ? "HostToDevice" : "DeviceToHost";
    OUT("static void cuda_%s(aert_device *d) {\n  cuda_device *c = (cuda_device *)d->own;\n", up ? "upload" : "download");
    emit_copy(e, up ? "c->P" : "d->params", up ? "d->params" : "c->P", n, dir);
    OUT("  if (d->training) {\n  ");
    emit_copy(e, up ? "c->m" : "c->opt.m", up ? "c->opt.m" : "c->m", n, dir);
    OUT("    if (c->opt.v)\n    ");
    emit_copy(e, up ? "c->v" : "c->opt.v", up ? "c->opt.v" : "c->v", n, dir);
    OUT("  }\n");
    if (up && e->n_cw) OUT("  AEC_CHECK(cudaMemcpy(c->cw, class_weights, sizeof class_weights, cudaMemcpyHostToDevice));\n");
    OUT("}\n\n");
  }
}

/* batch, forward, backward and decode, and the host copies of what they computed. */
static void emit_device_passes(emitter *e) {
  const ae_program *p = e->p;
  const ae_model *m = p->m;
  OUT("/* The batch in: a host batch through the pinned buffers and the copy stream, or the\n"
      " * indices of a batch of the kept set (aert_cuda_data.h). */\n"
      "static void cuda_batch(aert_device *d, const float *x, const float *y) {\n"
      "  aecd_feed_host(&((cuda_device *)d->own)->feed, x, y);\n}\n\n"
      "static int cuda_keep(aert_device *d, const aert_device_set *set) {\n"
      "  return aecd_feed_keep(&((cuda_device *)d->own)->feed, d->m, set);\n}\n\n"
      "static void cuda_batch_kept(aert_device *d, const long *index, long epoch) {\n"
      "  aecd_feed_kept(&((cuda_device *)d->own)->feed, index, epoch);\n}\n\n"
      "static void *cuda_host_alloc(aert_device *d, size_t n) { return aecd_feed_host_alloc(&((cuda_device *)d->own)->feed, n); }\n\n"
      "static void cuda_host_free(aert_device *d, void *p) { aecd_feed_host_free(&((cuda_device *)d->own)->feed, p); }\n\n");
  OUT("static run run_of(cuda_device *c, int training) {\n"
      "  c->grads_here = c->out_here = c->lat_here = c->decoded = 0;\n"
      "  return place(c->P, c->G, c->A, aecd_feed_x(&c->feed), aecd_feed_t(&c->feed), &c->step->seed, training, shard->first, c->sums, c->sums_host, c->cw, c->stream);\n}\n\n");
  bool lt = p->gemm == AE_GEMM_CUBLASLT;
  OUT("/* The launches of one phase of a step, on the compute stream: captured into a graph at the\n"
      " * phase's first call and replayed after (all shapes are fixed), or launched as they are with\n"
      " * AEC_CUDA_GRAPH=0. A phase starts by copying its per-step values from the pinned step block,\n"
      " * so that a replay computes this step's. The batch alternates between the feed's two device\n"
      " * buffers, and a graph reads fixed pointers: the phases that read the batch have one graph a\n"
      " * buffer (aecd_feed_slot), the optimizer's one.%s */\n"
      "typedef void (*phase)(cuda_device *c, const run *r);\n\n"
      "static void run_phase(cuda_device *c, int which, const run *r, phase launches) {\n"
      "  if (!c->use_graphs) {\n    launches(c, r);\n    return;\n  }\n",
      lt ? " Under cuBLASLt (AECD_LT) a phase's first call runs\n * plain launches, which make its cuBLASLt plans outside any capture; the second captures" : "");
  if (lt)
    OUT("#if AECD_LT\n  if (!c->planned[which]) {\n    c->planned[which] = 1;\n    launches(c, r);\n    return;\n  }\n#endif\n");
  OUT("  int slot = which == GRAPH_STEP || which == GRAPH_STEP_SUMS ? 0 : aecd_feed_slot(&c->feed);\n"
      "  cudaGraphExec_t *exec = &c->graph[which][slot];\n"
      "  if (!*exec) {\n    cudaGraph_t g;\n"
      "    AEC_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeGlobal));\n    launches(c, r);\n"
      "    AEC_CHECK(cudaStreamEndCapture(c->stream, &g));\n    AEC_CHECK(cudaGraphInstantiate(exec, g, 0));\n"
      "    AEC_CHECK(cudaGraphDestroy(g));\n  }\n  AEC_CHECK(cudaGraphLaunch(*exec, c->stream));\n}\n\n");
  OUT("static void seed_in(cuda_device *c) {\n"
      "  AEC_CHECK(cudaMemcpyAsync(&c->step->seed, &c->step_host->seed, sizeof(uint64_t), cudaMemcpyHostToDevice, c->stream));\n}\n\n"
      "/* The finite check of the gradients, its answer copied back (a few bytes). */\n"
      "static void check_kernels(cuda_device *c) {\n"
      "  AEC_LAUNCH(nonfinite_part, dim3(AEC_NONFINITE_BLOCKS), AECD_THREADS, 0, c->stream, (const float *)c->G, c->step->part);\n"
      "  AEC_LAUNCH(nonfinite_first, dim3(1), AECD_THREADS, 0, c->stream, (const float *)c->G, (const long long *)c->step->part,\n"
      "             c->step->nonfinite);\n"
      "  AEC_CHECK(cudaMemcpyAsync(c->step_host->nonfinite, c->step->nonfinite, sizeof c->step->nonfinite, cudaMemcpyDeviceToHost,\n"
      "                            c->stream));\n}\n\n"
      "static void forward_phase(cuda_device *c, const run *r) {\n  seed_in(c);\n  forward_kernels(r);\n}\n\n"
      "static void backward_phase(cuda_device *c, const run *r) {\n  seed_in(c);\n  backward_kernels(r);\n  check_kernels(c);\n}\n\n");
  OUT("/* The host writes the step block once the stream is done with the last step's: a graph's copy\n"
      " * reads it when it runs. */\n"
      "static void set_seed(cuda_device *c, uint64_t seed) {\n  AEC_CHECK(cudaStreamSynchronize(c->stream));\n  c->step_host->seed = seed;\n}\n\n");
  OUT("static float cuda_forward(aert_device *d, int training, uint64_t seed, aert_losses *losses) {\n"
      "  cuda_device *c = (cuda_device *)d->own;\n  run r = run_of(c, training);\n  set_seed(c, seed);\n"
      "  run_phase(c, training ? GRAPH_TRAIN : GRAPH_EVAL, &r, forward_phase);\n"
      "  AEC_CHECK(cudaStreamSynchronize(c->stream));\n  return loss_of(c->sums_host, losses);\n}\n\n");
  OUT("static void cuda_backward(aert_device *d, uint64_t seed) {\n  cuda_device *c = (cuda_device *)d->own;\n  run r = run_of(c, 1);\n"
      "  set_seed(c, seed);\n  run_phase(c, GRAPH_BACKWARD, &r, backward_phase);\n  c->checked = 1;\n}\n\n");
  OUT("/* model.c's decoder on the host, on the parameters downloaded into the host view. */\n"
      "static void cuda_decode(aert_device *d, const float *latent) {\n  cuda_device *c = (cuda_device *)d->own;\n"
      "  if (!c->host_arena && !(c->host_arena = (float *)aert_alloc(sizeof(float) * %ldL, \"the decoder's host arena\"))) exit(1);\n"
      "  AEC_CHECK(cudaMemcpy(d->params, c->P, sizeof(float) * %ldL, cudaMemcpyDeviceToHost));\n"
      "  d->m->decode(d->params, c->host_arena, latent);\n  c->decoded = 1;\n}\n\n", p->arena_floats, p->param_floats);
  const ae_node *keep[2] = {m->output, m->latent};
  for (int i = 0; i < 2; i++) {
    const char *what = i ? "latent" : "output", *host = i ? "lat" : "out";
    OUT("static const float *cuda_%s(const aert_device *d) {\n  cuda_device *c = (cuda_device *)d->own;\n", what);
    if (!keep[i]) { OUT("  (void)c;\n  return NULL;\n}\n\n"); continue; }
    OUT("  if (c->decoded) return d->m->%s(c->host_arena);\n  if (!c->%s_here) {\n    run dr = place(c->P, c->G, c->A, aecd_feed_x(&c->feed), aecd_feed_t(&c->feed), NULL, 0, 0, c->sums, c->sums_host, c->cw, c->stream);\n"
        "    const run *r = &dr;   /* the buffer by its name */\n"
        "    AEC_CHECK(cudaMemcpy(c->%s, %s, sizeof(float) * %ldL, cudaMemcpyDeviceToHost));\n    c->%s_here = 1;\n  }\n  return c->%s;\n}\n\n",
        what, host, host, val(e, keep[i]), (long)p->batch * elems(keep[i]), host, host);
  }
}

/* grads_nonfinite, grads, accumulate and step: the finite check's answer comes back (a few
 * bytes) every step, the gradient arena only when the host asks for it (MPI); the
 * optimizer runs on the device, its per-step settings in the step block. */
static void emit_device_optimizer(emitter *e) {
  const ae_program *p = e->p;
  long n = p->param_floats, blocks = ew_blocks(n);
  OUT("static long cuda_grads_nonfinite(aert_device *d, float *value) {\n  cuda_device *c = (cuda_device *)d->own;\n"
      "  if (!c->checked) check_kernels(c);   /* the host changed the gradients */\n  c->checked = 1;\n"
      "  AEC_CHECK(cudaStreamSynchronize(c->stream));\n  long long at = c->step_host->nonfinite[0];\n"
      "  int bits = (int)c->step_host->nonfinite[1];\n  if (at >= 0) memcpy(value, &bits, sizeof *value);\n  return (long)at;\n}\n\n");
  OUT("static float *cuda_grads(aert_device *d) {\n  cuda_device *c = (cuda_device *)d->own;\n  if (!c->grads_here)\n  ");
  emit_copy(e, "c->grads", "c->G", ae_sprintf(e->a, "%ldL", n), "DeviceToHost");
  OUT("  c->grads_here = 1;\n  return c->grads;\n}\n\n");
  OUT("static void cuda_grads_changed(aert_device *d) {\n  cuda_device *c = (cuda_device *)d->own;\n  c->checked = 0;\n");
  emit_copy(e, "c->G", "c->grads", ae_sprintf(e->a, "%ldL", n), "HostToDevice");
  OUT("}\n\nstatic void cuda_accumulate(aert_device *d, int first) {\n  cuda_device *c = (cuda_device *)d->own;\n"
      "  AEC_LAUNCH(grad_accumulate, dim3(%ld), AECD_THREADS, 0, c->stream, c->gsum, (const float *)c->G, first);\n}\n\n", blocks);
  OUT("/* The optimizer kernels on gradient g (the last gradient, or the sums of accumulate, which\n"
      " * grad_scale made their mean): the clipping to the global norm (with clip), all on the device,\n"
      " * then the optimizer with its settings copied into the step block. */\n"
      "static void optimizer_kernels(cuda_device *c, float *g) {\n"
      "  if (c->clip > 0) {\n"
      "    AEC_LAUNCH(grad_norm_part, dim3((AEC_NORM_CHUNKS + AECD_THREADS - 1) / AECD_THREADS), AECD_THREADS, 0, c->stream,\n"
      "               (const float *)g, c->norm_part);\n"
      "    AEC_LAUNCH(grad_clip_scale, dim3(1), dim3(1), 0, c->stream, (const double *)c->norm_part, c->clip, &c->step->clip_scale,\n"
      "               &c->step->grad_norm);\n"
      "    AEC_LAUNCH(grad_scale_at, dim3(%ld), AECD_THREADS, 0, c->stream, g, (const float *)&c->step->clip_scale);\n  }\n"
      "  AEC_CHECK(cudaMemcpyAsync(&c->step->optim, &c->step_host->optim, sizeof(aecd_optim), cudaMemcpyHostToDevice, c->stream));\n"
      "  AEC_LAUNCH(optim_step_at, dim3(%ld), AECD_THREADS, 0, c->stream, c->P, g, c->m, c->v, (const aecd_optim *)&c->step->optim);\n}\n\n"
      "static void step_phase(cuda_device *c, const run *r) {\n  (void)r;\n  optimizer_kernels(c, c->G);\n}\n\n"
      "static void step_sums_phase(cuda_device *c, const run *r) {\n  (void)r;\n  optimizer_kernels(c, c->gsum);\n}\n\n",
      blocks, blocks);
  OUT("/* As device_cpu.c's step, all on the device: the mean of the sums, then the clipping and the\n"
      " * optimizer (one graph a run for each gradient it may step from). */\n"
      "static void cuda_step(aert_device *d, int batches, float lr) {\n  cuda_device *c = (cuda_device *)d->own;\n"
      "  if (batches > 1) AEC_LAUNCH(grad_scale, dim3(%ld), AECD_THREADS, 0, c->stream, c->gsum, 1.0f / (float)batches);\n"
      "  c->grads_here = 0;   /* the host copy, if any, is not the scaled or clipped gradient */\n"
      "  c->opt.step++;\n  AEC_CHECK(cudaStreamSynchronize(c->stream));   /* the last step's graph has read the block */\n"
      "  c->step_host->optim = aecd_optim_of(&d->m->optim, c->opt.step, lr);\n"
      "  if (batches > 0) run_phase(c, GRAPH_STEP_SUMS, NULL, step_sums_phase);\n  else run_phase(c, GRAPH_STEP, NULL, step_phase);\n}\n\n", blocks);
}

/* --device N, the CUDA trainers' own option: the GPU of the run, set and taken out of argv
 * before the runtime parses the rest (whose command line refuses --device: the CPU trainer). */
static void emit_select_device(emitter *e) {
  OUT("/* --device N or --device=N: cudaSetDevice(N), and the option out of argv; 0 or -1 with a message. */\n"
      "static int select_device(int *argc, char **argv) {\n  for (int i = 1; i < *argc; i++) {\n"
      "    int used = !strcmp(argv[i], \"--device\") ? 2 : !strncmp(argv[i], \"--device=\", 9) ? 1 : 0;\n"
      "    if (!used) continue;\n    if (used == 2 && i + 1 >= *argc) {\n      aert_error(\"option '--device' needs a value (N)\");\n      return -1;\n    }\n"
      "    const char *val = used == 2 ? argv[i + 1] : argv[i] + 9;\n    char *end;\n    long n = strtol(val, &end, 10);\n    int count = 0;\n"
      "    cudaError_t err = cudaGetDeviceCount(&count);\n    if (err != cudaSuccess) {\n"
      "      aert_error(\"--device %%s: no CUDA device can be used (%%s)\", val, cudaGetErrorString(err));\n      return -1;\n    }\n"
      "    if (!*val || *end || n < 0 || n >= count) {\n"
      "      aert_error(\"--device expects a CUDA device number from 0 to %%d (this machine has %%d device%%s), got '%%s'\", count - 1, count,\n"
      "                 count == 1 ? \"\" : \"s\", val);\n      return -1;\n    }\n"
      "    AEC_CHECK(cudaSetDevice((int)n));\n"
      "    memmove(argv + i, argv + i + used, sizeof(char *) * (size_t)(*argc - i - used + 1));   /* and its NULL */\n"
      "    *argc -= used;\n    i--;\n  }\n  return 0;\n}\n\n");
}

static void emit_host_glue(emitter *e) {
  OUT("\n/* ==== host glue: the device (runtime/device.h) this model brings to the runtime ==== */\n");
  emit_class_weights(e);
  emit_device_memory(e);
  emit_device_transfers(e);
  emit_device_passes(e);
  emit_device_optimizer(e);
  OUT("static const aert_device_ops cuda_device_ops = {\n  cuda_open, cuda_close, cuda_upload, cuda_download, cuda_batch, cuda_forward,\n"
      "  cuda_backward, cuda_decode, cuda_output, cuda_latent, cuda_grads, cuda_grads_changed, cuda_accumulate, cuda_step,\n"
      "  cuda_grads_nonfinite, cuda_keep, cuda_batch_kept, cuda_host_alloc, cuda_host_free,\n};\n\n");
  OUT("/* The C target's descriptor (model.c, built with AEC_NO_MAIN) on this file's device: the\n"
      " * runtime and its commands run the model unchanged. */\n");
  OUT("static aert_model cuda_descriptor(void) {\n  aert_model m = aec_model;\n  m.device = &cuda_device_ops;\n%s"
      "  return m;\n}\n\n", any_auto_weights(e->p->m) ? "  m.set_class_weights = cuda_set_class_weights;\n" : "");
  OUT("#ifndef AEC_NO_MAIN\n");
  emit_select_device(e);
  OUT("int main(int argc, char **argv) {\n  static aert_model m;\n  m = cuda_descriptor();\n"
      "  aert_prefer_passive_threads(argv);\n  if (select_device(&argc, argv) != 0)\n    return 2;\n  return aert_main(&m, argc, argv);\n}\n#endif\n");
}

/* The GEMMs' precision (aec build --precision), which aert_cuda_kernels.h reads: every
 * GEMM of the model (dense, conv and conv_transpose, forward, dW and dX) goes through
 * aecd_gemm, so none is left in fp32 under tf32 or bf16. */
static void emit_precision(emitter *e) {
  static const char *const what[] = {
      "fp32: every GEMM on the SIMT cores in fp32",
      "tf32: every GEMM (dense, conv and conv_transpose; forward, dW and dX) on tensor cores\n"
      " * (wmma m16n16k8), operands rounded to tf32, sums in fp32",
      "bf16: every GEMM (dense, conv and conv_transpose; forward, dW and dX) on tensor cores\n"
      " * (wmma m16n16k16), operands rounded to bf16, sums in fp32; no GEMM is left in fp32",
  };
  static const char *const macro[] = {"AECD_FP32", "AECD_TF32", "AECD_BF16"};
  OUT("/* precision %s.\n * Parameters, activations, gradients, their accumulation and the optimizer stay fp32. */\n"
      "#define AECD_PRECISION %s\n", what[e->p->precision], macro[e->p->precision]);
}

/* --gemm cublaslt: under nvcc the dense layers' GEMMs call cuBLASLt (AECD_LT 1); the
 * emulator has no cuBLASLt and runs the layers' GEMM kernels instead. */
static void emit_gemm_library(emitter *e) {
  if (e->p->gemm != AE_GEMM_CUBLASLT) return;
  OUT("/* gemm cublaslt: the dense layers' GEMMs (forward with its bias and ReLU epilogues, dW and dX)\n"
      " * by cublasLtMatmul under nvcc (link -lcublasLt); under the emulator the GEMM kernels run in their\n"
      " * place. The activation's derivative and the bias gradient stay kernels. */\n"
      "#ifdef __CUDACC__\n#define AECD_LT 1\n#include \"aert_cublaslt.h\"\n#else\n#define AECD_LT 0\n#endif\n\n");
}

static void emit_model_cu(emitter *e, const char *hash) {
  const ae_program *p = e->p;
  const ae_model *m = p->m;
  e->bufs = ae_plan_buffers(e->a, p, &e->n_bufs);
  e->slot = ae_alloc(e->a, sizeof(int) * (size_t)(m->losses.len + 1));
  e->cw_at = ae_alloc(e->a, sizeof(int) * (size_t)(m->losses.len + 1));
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    e->slot[i] = e->n_slots;
    e->n_slots += slots_of(p, t);
    e->cw_at[i] = ae_loss_on_classes(t->kind) && (t->n_weights || t->auto_weights) ? e->n_cw : -1;
    if (e->cw_at[i] >= 0) e->n_cw += m->n_classes;
  }
  OUT("/* model.cu - generated by aec from %s (spec hash %s); do not edit, change the spec instead.\n", m->src->path, hash);
  OUT(" * The CUDA target for model %s at batch %d: %d fused kernels, each a __global__ per step with\n"
      " * its launch beside it; NHWC tensors and the parameter and arena layouts of model.c. Built by\n"
      " * nvcc (bin/%s-cuda) or as host C++ under runtime/cuda_emu.h (aec build --target cuda --emulate).\n"
      " * Backward kernels accumulate (+=) into gradients; every sum has one thread and a fixed order. */\n",
      m->name, p->batch, p->kernels.len, m->name);
  emit_precision(e);
  OUT("#include \"aert_cuda_kernels.h\"\n#include \"aert_cuda_data.h\"\n\nextern \"C\" {\n#include \"model.h\"\n#include \"device.h\"\n#include \"aert_internal.h\"\n}\n\n");
  emit_gemm_library(e);
  OUT("static aert_shard *const shard = aec_model.shard;   /* data-parallel place: all zero alone */\n");
  emit_run(e);
  const char **names = ae_alloc(e->a, sizeof(char *) * (size_t)(p->kernels.len + 1));
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    names[i] = ae_kernel_name(e->a, k);
    if (e->kernel_at) e->kernel_at[i] = ftell(e->o);
    ae_emit_provenance(e->o, e->a, p, k);
    switch (k->kind) {
    case K_CONV: emit_conv(e, k, names[i]); break;
    case K_CONV_T: emit_conv_t(e, k, names[i]); break;
    case K_DENSE: emit_dense(e, k, names[i]); break;
    case K_CONCAT: case K_ADD: emit_join(e, k, names[i]); break;
    case K_BATCHNORM: emit_batchnorm(e, k, names[i]); break;
    default: emit_simple(e, k, names[i]);
    }
  }
  if (e->kernel_at) e->kernel_at[p->kernels.len] = ftell(e->o);
  OUT("\n/* ---- the loss: %d term%s */\n", m->losses.len, m->losses.len == 1 ? "" : "s");
  for (int i = 0; i < m->losses.len; i++) emit_loss_kernels(e, i);
  emit_compute_loss(e);
  emit_drivers(e, names);
  emit_optimizer(e);
  emit_host_glue(e);
}

/* model.cu as text, through the same emitter that writes it (for `aec report --target cuda`). */
char *ae_emit_model_cu_text(ae_arena *a, const ae_program *p, const char *hash, long *kernel_at) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  emitter em = {.a = a, .p = p, .o = f, .kernel_at = kernel_at};
  emit_model_cu(&em, hash);
  if (fclose(f) != 0) { free(buf); return NULL; }
  char *text = ae_strndup(a, buf, len);
  free(buf);
  return text;
}

bool ae_emit_cuda(ae_arena *a, const ae_program *p, const char *dir, const char *hash) {
  char *path = ae_sprintf(a, "%s/model.cu", dir);
  FILE *f = fopen(path, "w");
  if (!f) { fprintf(stderr, "aec: cannot write '%s': %s\n", path, strerror(errno)); return false; }
  emitter em = {.a = a, .p = p, .o = f};
  emit_model_cu(&em, hash);
  bool ok = !ferror(f);
  ok = fclose(f) == 0 && ok;
  if (!ok) fprintf(stderr, "aec: error writing '%s'\n", path);
  return ok;
}
