/* reference.c - a plain reference forward pass, checked against the generated code.
 * It interprets the checked graph node by node with direct loops: no fusion, no
 * folded upsample or concat, no im2col, no GEMM, no memory plan, one buffer per node.
 * Built by tests/reference/run.sh around a spec's generated model.c in double; both
 * run in evaluation mode (no noise or dropout, sample = mu, running batch-norm
 * statistics) on the same random parameters and inputs, and the model output and the
 * loss must agree to 1e-9 relative. */
#include "model.c"
#include "aec.h"

#include <stdio.h>
#include <stdlib.h>

typedef double real;

static const ae_tensor *param(const ae_program *p, const ae_node *n, const char *role) {
  for (int i = 0; i < p->params.len; i++) {
    const ae_tensor *t = p->params.items[i];
    size_t len = strlen(n->name);
    if (t->node == n && !strcmp(t->name + len + 1, role)) return t;
  }
  fprintf(stderr, "reference: no %s.%s\n", n->name, role);
  exit(2);
}

/* A layer's bias, or zeros for bias=false. */
static const real *bias_of(const ae_program *p, const ae_node *n, const real *P) {
  static const real zeros[65536];
  return n->no_bias ? zeros : P + param(p, n, "b")->offset;
}

/* PyTorch's bilinear interpolation (align_corners=False), written from its definition:
 * output o reads source (o + 1/2) / f - 1/2, at least 0, between floor and floor + 1. */
static void bilinear_source(int o, int f, int in, int *i0, int *i1, real *frac) {
  real src = fmax((o + 0.5) / f - 0.5, 0);
  *i0 = (int)floor(src);
  *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
  *frac = src - *i0;
}

static real act(ae_op op, real alpha, real v) {
  switch (op) {
  case OP_RELU: return v > 0 ? v : 0;
  case OP_LEAKY_RELU: return v > 0 ? v : alpha * v;
  case OP_ELU: return v > 0 ? v : alpha * (exp(v) - 1);
  case OP_SIGMOID: return 1 / (1 + exp(-v));
  case OP_TANH: return tanh(v);
  default: return v;
  }
}

/* out[b][oh][ow][co] = bias + sum x[b][oh*s-p+kh][ow*s-p+kw][ci] w[kh][kw][ci][co] */
static void conv(const ae_node *n, const real *x, const real *w, const real *bias, real *y, int B) {
  const ae_node *in = n->in.items[0];
  int H = in->shape.d[0], W = in->shape.d[1], C = in->shape.d[2], K = n->k, S = n->stride, F = n->units;
  int HO = n->shape.d[0], WO = n->shape.d[1], pad = n->pad_same ? (K - 1) / 2 : 0;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < HO; oh++)
      for (int ow = 0; ow < WO; ow++)
        for (int co = 0; co < F; co++) {
          real s = bias[co];
          for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
              int ih = oh * S - pad + kh, iw = ow * S - pad + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (int ci = 0; ci < C; ci++)
                s += x[((b * H + ih) * W + iw) * C + ci] * w[((kh * K + kw) * C + ci) * F + co];
            }
          y[((b * HO + oh) * WO + ow) * F + co] = s;
        }
}

/* y[b][ih*s-p+kh][iw*s-p+kw][co] += x[b][ih][iw][ci] w[ci][kh][kw][co] */
static void conv_transpose(const ae_node *n, const real *x, const real *w, const real *bias, real *y, int B) {
  const ae_node *in = n->in.items[0];
  int H = in->shape.d[0], W = in->shape.d[1], C = in->shape.d[2], K = n->k, S = n->stride, F = n->units;
  int HO = n->shape.d[0], WO = n->shape.d[1], pad = n->pad_same ? (K - 1) / 2 : 0;
  for (long i = 0; i < (long)B * HO * WO; i++)
    for (int co = 0; co < F; co++) y[i * F + co] = bias[co];
  for (int b = 0; b < B; b++)
    for (int ih = 0; ih < H; ih++)
      for (int iw = 0; iw < W; iw++)
        for (int kh = 0; kh < K; kh++)
          for (int kw = 0; kw < K; kw++) {
            int oh = ih * S - pad + kh, ow = iw * S - pad + kw;
            if (oh < 0 || oh >= HO || ow < 0 || ow >= WO) continue;
            for (int ci = 0; ci < C; ci++)
              for (int co = 0; co < F; co++)
                y[((b * HO + oh) * WO + ow) * F + co] += x[((b * H + ih) * W + iw) * C + ci] * w[((ci * K + kh) * K + kw) * F + co];
          }
}

static void pool(const ae_node *n, const real *x, real *y, int B) {
  const ae_node *in = n->in.items[0];
  int H = in->shape.d[0], W = in->shape.d[1], C = in->shape.d[2], K = n->k, S = n->stride;
  int HO = n->shape.d[0], WO = n->shape.d[1];
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < HO; oh++)
      for (int ow = 0; ow < WO; ow++)
        for (int c = 0; c < C; c++) {
          real m = -INFINITY, s = 0;
          for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
              real v = x[((b * H + oh * S + kh) * W + ow * S + kw) * C + c];
              m = v > m ? v : m;
              s += v;
            }
          y[((b * HO + oh) * WO + ow) * C + c] = n->op == OP_MAXPOOL ? m : s / (K * K);
        }
}

static void eval_node(const ae_program *p, const ae_node *n, real **v, const real *P, int B) {
  long N = ae_shape_elems(n->shape), total = N * B;
  const ae_node *in0 = n->in.len ? n->in.items[0] : NULL;
  const real *x = in0 ? v[in0->id] : NULL;
  real *y = v[n->id];
  int C = n->shape.d[n->shape.rank - 1];
  switch (n->op) {
  case OP_DENSE: {
    long ni = ae_shape_elems(in0->shape);
    const real *w = P + param(p, n, "w")->offset, *bias = bias_of(p, n, P);
    for (int b = 0; b < B; b++)
      for (long o = 0; o < N; o++) {
        real s = bias[o];
        for (long i = 0; i < ni; i++) s += x[b * ni + i] * w[i * N + o];
        y[b * N + o] = s;
      }
    break;
  }
  case OP_CONV: conv(n, x, P + param(p, n, "w")->offset, bias_of(p, n, P), y, B); break;
  case OP_CONV_T: conv_transpose(n, x, P + param(p, n, "w")->offset, bias_of(p, n, P), y, B); break;
  case OP_MAXPOOL: case OP_AVGPOOL: pool(n, x, y, B); break;
  case OP_UPSAMPLE: {
    int H = in0->shape.d[0], W = in0->shape.d[1], f = n->factor;
    for (int b = 0; b < B && n->bilinear; b++)
      for (int h = 0; h < H * f; h++)
        for (int w = 0; w < W * f; w++) {
          int h0, h1, w0, w1;
          real lh, lw;
          bilinear_source(h, f, H, &h0, &h1, &lh);
          bilinear_source(w, f, W, &w0, &w1, &lw);
          for (int c = 0; c < C; c++) {
#define X(hh, ww) x[((b * H + (hh)) * W + (ww)) * C + c]
            y[((b * H * f + h) * W * f + w) * C + c] =
                (1 - lh) * ((1 - lw) * X(h0, w0) + lw * X(h0, w1)) + lh * ((1 - lw) * X(h1, w0) + lw * X(h1, w1));
#undef X
          }
        }
    for (int b = 0; b < B && !n->bilinear; b++)
      for (int h = 0; h < H * f; h++)
        for (int w = 0; w < W * f; w++)
          for (int c = 0; c < C; c++) y[((b * H * f + h) * W * f + w) * C + c] = x[((b * H + h / f) * W + w / f) * C + c];
    break;
  }
  case OP_CONCAT: {
    long pixels = total / C;
    for (long px = 0, off = 0; px < pixels; px++, off = 0)
      for (int j = 0; j < n->in.len; j++) {
        const ae_node *s = n->in.items[j];
        int cs = s->shape.d[s->shape.rank - 1];
        for (int c = 0; c < cs; c++) y[px * C + off + c] = v[s->id][px * cs + c];
        off += cs;
      }
    break;
  }
  case OP_ADD:
    for (long i = 0; i < total; i++) {
      y[i] = 0;
      for (int j = 0; j < n->in.len; j++) y[i] += v[((ae_node *)n->in.items[j])->id][i];
    }
    break;
  case OP_BATCHNORM: {
    const real *g = P + param(p, n, "gamma")->offset, *be = P + param(p, n, "beta")->offset;
    const real *mu = P + param(p, n, "mean")->offset, *var = P + param(p, n, "var")->offset;
    for (long i = 0; i < total; i++) y[i] = g[i % C] * (x[i] - mu[i % C]) / sqrt(var[i % C] + n->eps) + be[i % C];
    break;
  }
  case OP_SOFTMAX:
    for (long r = 0; r < total / C; r++) {
      real m = x[r * C], s = 0;
      for (int c = 1; c < C; c++) m = x[r * C + c] > m ? x[r * C + c] : m;
      for (int c = 0; c < C; c++) s += exp(x[r * C + c] - m);
      for (int c = 0; c < C; c++) y[r * C + c] = exp(x[r * C + c] - m) / s;
    }
    break;
  case OP_INPUT: case OP_TARGET: break;
  default:   /* activations; flatten, reshape, dropout, noise and sample are the identity here */
    for (long i = 0; i < total; i++) y[i] = act(n->op, n->alpha, x[i]);
  }
}

/* log softmax(row)[c] of a row of C logits */
static real log_softmax_at(const real *row, int C, int c) {
  real m = row[0], z = 0;
  for (int j = 1; j < C; j++) m = fmax(m, row[j]);
  for (int j = 0; j < C; j++) z += exp(row[j] - m);
  return row[c] - m - log(z);
}

/* dice and jaccard as segmentation_models_pytorch defines them (see docs/language.md):
 * per class over the whole batch, skipping ignored pixels; absent classes add 0. */
static real overlap_loss(const ae_program *p, const ae_loss_term *t, const real *a, const real *b, long n) {
  int C = p->m->n_classes;
  real loss = 0, wsum = 0;
  for (int c = 0; c < C; c++) {
    real inter = 0, card = 0, present = 0;
    for (long r = 0; r < n / C; r++) {
      int k = (int)b[r];
      if (k < 0) continue;
      real prob = exp(log_softmax_at(a + r * C, C, c));
      inter += prob * (k == c);
      card += prob + (k == c);
      present += k == c;
    }
    real w = t->n_weights ? t->class_weights[c] : 1;
    real score = t->kind == LOSS_DICE ? (2 * inter + t->smooth) / fmax(card + t->smooth, 1e-7)
                                      : (inter + t->smooth) / fmax(card - inter + t->smooth, 1e-7);
    loss += present > 0 ? w * (1 - score) : 0;
    wsum += w;
  }
  return wsum > 0 ? loss / wsum : 0;
}

static real loss_term(const ae_program *p, const ae_loss_term *t, real **v, const real *P, int B) {
  long n = t->a ? ae_shape_elems(t->a->shape) * B : 0;
  const real *a = t->a ? v[t->a->id] : NULL, *b = t->b ? v[t->b->id] : NULL;
  real s = 0, denom = t->reduce_sum ? B : n;
  switch (t->kind) {
  case LOSS_MSE: for (long i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]); return s / denom;
  case LOSS_BCE:
    for (long i = 0; i < n; i++) s -= b[i] * fmax(log(a[i]), -100) + (1 - b[i]) * fmax(log(1 - a[i]), -100);
    return s / denom;
  case LOSS_SOFTMAX_XENT: case LOSS_FOCAL: {   /* focal: w (1 - p)^gamma (-log p); softmax_xent: gamma 0 */
    int C = p->m->n_classes;
    real wsum = 0, gamma = t->kind == LOSS_FOCAL ? t->gamma : 0;
    for (long r = 0; r < n / C; r++) {
      int k = (int)b[r];
      if (k < 0) continue;
      real w = t->n_weights ? t->class_weights[k] : 1, logp = log_softmax_at(a + r * C, C, k);
      s -= w * pow(1 - exp(logp), gamma) * logp;
      wsum += w;
    }
    return t->reduce_sum ? s / B : wsum > 0 ? s / wsum : 0;   /* every label ignored: nothing to learn, 0 */
  }
  case LOSS_DICE: case LOSS_JACCARD: return overlap_loss(p, t, a, b, n);
  case LOSS_L1: for (long i = 0; i < n; i++) s += fabs(a[i]); return s / B;
  case LOSS_KL_SPARSITY: {
    long U = n / B;
    for (long j = 0; j < U; j++) {
      real m = 0;
      for (int bb = 0; bb < B; bb++) m += a[bb * U + j];
      m /= B;
      s += t->rho * log(t->rho / m) + (1 - t->rho) * log((1 - t->rho) / (1 - m));
    }
    return s;
  }
  case LOSS_KL_NORMAL: for (long i = 0; i < n; i++) s += -0.5 * (1 + b[i] - a[i] * a[i] - exp(b[i])); return s / B;
  case LOSS_L2:
    for (int i = 0; i < p->params.len; i++) {
      const ae_tensor *w = p->params.items[i];
      if (w->is_weight && !w->frozen)
        for (long j = 0; j < w->size; j++) s += P[w->offset + j] * P[w->offset + j];
    }
    return s;
  default: return 0;
  }
}

int main(int argc, char **argv) {
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = stderr };
  ae_model *m = argc == 2 ? ae_load_spec(a, &d, argv[1]) : NULL;
  if (!m) { fprintf(stderr, "usage: reference SPEC (the spec of the model.c this was built with)\n"); return 2; }
  ae_program *p = ae_lower(a, m, AEC_BATCH);
  int B = AEC_BATCH;
  static real P[AEC_PARAM_FLOATS], A[AEC_ARENA_FLOATS];
  static real X[AEC_BATCH * AEC_IN_SIZE], T[AEC_BATCH * (AEC_TARGET_SIZE ? AEC_TARGET_SIZE : 1)];
  uint64_t s = 11;
  for (long i = 0; i < AEC_PARAM_FLOATS; i++) { s = aert_hash64(s); P[i] = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.6; }
  for (int i = 0; i < p->params.len; i++) {   /* running variances must be positive */
    const ae_tensor *t = p->params.items[i];
    if (t->init == INIT_ONES) for (long j = 0; j < t->size; j++) P[t->offset + j] = 1 + fabs(P[t->offset + j]);
  }
  for (long i = 0; i < (long)B * AEC_IN_SIZE; i++) { s = aert_hash64(s); X[i] = 0.05 + 0.9 * (double)(s >> 11) / 9007199254740992.0; }
  for (long i = 0; i < (long)B * AEC_TARGET_SIZE; i++) {
    s = aert_hash64(s);
    double u = (double)(s >> 11) / 9007199254740992.0;
    T[i] = AEC_N_CLASSES ? (u < 0.1 ? -1 : (int)(u * 10 * AEC_N_CLASSES) % AEC_N_CLASSES) : 0.05 + 0.9 * u;
  }
  double got = model_forward(P, A, X, T, 0, 5, NULL);
  const real *out = model_output(A);
  real **v = calloc((size_t)p->n_nodes, sizeof *v);
  for (int i = 0; i < m->nodes.len; i++) {
    ae_node *n = m->nodes.items[i];
    long total = ae_shape_elems(n->shape) * B;
    if (n->op == OP_INPUT) v[i] = X;
    else if (n->op == OP_TARGET) v[i] = T;
    else if (n->op == OP_FLATTEN || n->op == OP_RESHAPE || n->op == OP_LINEAR || n->op == OP_DROPOUT ||
             n->op == OP_NOISE || n->op == OP_SAMPLE) v[i] = v[((ae_node *)n->in.items[0])->id];
    else { v[i] = calloc((size_t)total, sizeof(real)); eval_node(p, n, v, P, B); }
  }
  double want = 0;
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    want += t->weight * loss_term(p, t, v, P, B);
  }
  const real *ref_out = v[m->output->id];
  double worst = 0;
  for (long i = 0; i < ae_shape_elems(m->output->shape) * B; i++)
    worst = fmax(worst, fabs(out[i] - ref_out[i]) / fmax(fabs(ref_out[i]), 1e-3));
  double loss_err = fabs(got - want) / fmax(fabs(want), 1e-12);
  printf("%s: loss %.12g (reference %.12g, relative error %.1e), output max relative error %.1e\n", m->name, got, want,
         loss_err, worst);
  return loss_err < 1e-9 && worst < 1e-9 ? 0 : 1;
}
