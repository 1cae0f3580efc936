/* onnx.c - the inference graph of a model (aert_model.graph) with its trained weights as an
 * ONNX model (opset 17, IR version 8), written by a small protobuf encoder: the input's
 * normalisation first, NCHW inside (Conv, ConvTranspose, pools, Resize), NHWC or NCHW at the
 * edges as asked; inputs "input", outputs "output" and "latent". */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

/* ---- protobuf: varints, length-delimited fields, nested messages as buffers ---------- */
static void pb_int(aert_buf *b, int field, int64_t v) {
  aert_pb_varint(b, (uint64_t)field << 3);
  aert_pb_varint(b, (uint64_t)v);
}

static void pb_str(aert_buf *b, int field, const char *s) {
  aert_pb_bytes(b, field, s, strlen(s));
}

static void pb_float(aert_buf *b, int field, float f) {
  aert_pb_varint(b, (uint64_t)field << 3 | 5);
  aert_buf_put(b, &f, 4);
}

/* Appends child as field of b and frees it. */
static void pb_msg(aert_buf *b, int field, aert_buf *child) {
  if (child->failed)
    b->failed = 1;
  aert_pb_bytes(b, field, child->p, child->n);
  free(child->p);
  memset(child, 0, sizeof *child);
}

/* ---- ONNX messages (onnx.proto field numbers) ------------------------------------------ */
enum { T_FLOAT = 1, T_INT64 = 7 };                 /* TensorProto.DataType */
enum { A_FLOAT = 1, A_INT = 2, A_STRING = 3, A_INTS = 7 };   /* AttributeProto.AttributeType */

typedef struct {
  aert_buf graph;
  int count;       /* values made so far, for fresh names */
  int nodes;       /* nodes made so far, for their names */
  int nchw_io;     /* 1: the input and outputs are NCHW, 0: NHWC */
} onnx_t;

typedef struct {
  const char *name;
  int type;
  float f;
  int64_t i;
  const char *s;
  int n_ints;
  int64_t ints[8];
} attr_t;

static void node(onnx_t *g, const char *op, const char *const *in, int n_in, const char *out,
                 const attr_t *attrs, int n_attrs) {
  aert_buf n = {0};
  for (int i = 0; i < n_in; i++)
    pb_str(&n, 1, in[i]);
  pb_str(&n, 2, out);
  char name[64];
  snprintf(name, sizeof name, "%s_%d", op, g->nodes++);
  pb_str(&n, 3, name);
  pb_str(&n, 4, op);
  for (int i = 0; i < n_attrs; i++) {
    aert_buf a = {0};
    pb_str(&a, 1, attrs[i].name);
    pb_int(&a, 20, attrs[i].type);
    if (attrs[i].type == A_FLOAT)
      pb_float(&a, 2, attrs[i].f);
    else if (attrs[i].type == A_INT)
      pb_int(&a, 3, attrs[i].i);
    else if (attrs[i].type == A_STRING)
      pb_str(&a, 4, attrs[i].s);
    for (int k = 0; attrs[i].type == A_INTS && k < attrs[i].n_ints; k++)
      pb_int(&a, 8, attrs[i].ints[k]);
    pb_msg(&n, 5, &a);
  }
  pb_msg(&g->graph, 1, &n);
}

static void tensor(onnx_t *g, const char *name, int type, int rank, const long *dims,
                   const void *data, size_t bytes) {
  aert_buf t = {0};
  for (int i = 0; i < rank; i++)
    pb_int(&t, 1, dims[i]);
  pb_int(&t, 2, type);
  pb_str(&t, 8, name);
  aert_pb_bytes(&t, 9, data, bytes);   /* raw_data, little-endian */
  pb_msg(&g->graph, 5, &t);
}

/* A fresh value name. */
static const char *fresh(onnx_t *g, char buf[32]) {
  snprintf(buf, 32, "t%d", g->count++);
  return buf;
}

static void const_ints(onnx_t *g, const char *name, int n, const int64_t *v) {
  long dims[1] = {n};
  tensor(g, name, T_INT64, 1, dims, v, sizeof(int64_t) * (size_t)n);
}

static void const_floats(onnx_t *g, const char *name, int rank, const long *dims, const float *v,
                         long n) {
  tensor(g, name, T_FLOAT, rank, dims, v, sizeof(float) * (size_t)n);
}

/* value_info of a graph input or output: float, [N, dims...] with N symbolic. */
static void value_info(onnx_t *g, int field, const char *name, int rank, const long *dims) {
  aert_buf vi = {0}, type = {0}, tt = {0}, shape = {0}, d = {0};
  pb_str(&d, 2, "N");
  pb_msg(&shape, 1, &d);
  for (int i = 0; i < rank; i++) {
    pb_int(&d, 1, dims[i]);
    pb_msg(&shape, 1, &d);
  }
  pb_int(&tt, 1, T_FLOAT);
  pb_msg(&tt, 2, &shape);
  pb_msg(&type, 1, &tt);
  pb_str(&vi, 1, name);
  pb_msg(&vi, 2, &type);
  pb_msg(&g->graph, field, &vi);
}

static attr_t ints_attr(const char *name, int n, int64_t a, int64_t b) {
  attr_t t = {.name = name, .type = A_INTS, .n_ints = n};
  for (int i = 0; i < n; i++)
    t.ints[i] = i % 2 ? b : a;
  return t;
}

static void transpose(onnx_t *g, const char *in, const char *out, int64_t a, int64_t b, int64_t c,
                      int64_t d) {
  attr_t perm = {.name = "perm", .type = A_INTS, .n_ints = 4, .ints = {a, b, c, d}};
  node(g, "Transpose", &in, 1, out, &perm, 1);
}

/* ---- the layers ----------------------------------------------------------------------- */
/* Each layer's value is "v<index>", NCHW for images, [N, n] for vectors. */
static void layer_name(char *s, int i) {
  snprintf(s, 32, "v%d", i);
}

static void reshape_to(onnx_t *g, const char *in, const char *out, int n, const int64_t *shape) {
  char sh[32];
  fresh(g, sh);
  const_ints(g, sh, n, shape);
  const char *ins[2] = {in, sh};
  node(g, "Reshape", ins, 2, out, NULL, 0);
}

/* flatten, reshape: aec's views are in NHWC order */
static void emit_view(onnx_t *g, const aert_layer *L, const aert_layer *from, const char *in,
                      const char *out) {
  char nhwc[32];
  const char *src = in;
  if (from->rank == 3) {
    transpose(g, in, fresh(g, nhwc), 0, 2, 3, 1);
    src = nhwc;
  }
  if (L->rank == 3) {
    char mid[32];
    int64_t shape[4] = {-1, L->shape[0], L->shape[1], L->shape[2]};
    reshape_to(g, src, fresh(g, mid), 4, shape);
    transpose(g, mid, out, 0, 3, 1, 2);
  } else {
    int64_t shape[2] = {-1, L->shape[0]};
    reshape_to(g, src, out, 2, shape);
  }
}

static void param_names(const aert_layer *L, const char *a, const char *b, char *wa, char *wb) {
  snprintf(wa, 300, "%s.%s", L->param, a);
  snprintf(wb, 300, "%s.%s", L->param, b);
}

/* Whether the model has the parameter "layer.role" (bias=false leaves out layer.b). */
static int has_param(const aert_model *m, const char *layer, const char *role) {
  size_t n = strlen(layer);
  for (int i = 0; i < m->n_params; i++)
    if (!strncmp(m->params[i].name, layer, n) && m->params[i].name[n] == '.' && !strcmp(m->params[i].name + n + 1, role))
      return 1;
  return 0;
}

static int emit_layer(onnx_t *g, const aert_model *m, int i, const char *input) {
  const aert_layer *L = &m->graph[i];
  char out[32], in0[32], w[300], b[300];
  layer_name(out, i);
  layer_name(in0, L->n_in ? L->in[0] : 0);
  const char *x = in0;
  int p = L->same ? (L->k - 1) / 2 : 0;
  attr_t at[5];
  switch (L->op) {
  case AERT_L_INPUT: node(g, "Identity", &input, 1, out, NULL, 0); break;
  case AERT_L_TARGET: break;
  case AERT_L_DENSE: {
    param_names(L, "weight", "bias", w, b);
    const char *ins[3] = {x, w, b};
    at[0] = (attr_t){.name = "transB", .type = A_INT, .i = 1};
    node(g, "Gemm", ins, 2 + has_param(m, L->param, "b"), out, at, 1);
    break;
  }
  case AERT_L_CONV: case AERT_L_CONV_T: {
    param_names(L, "weight", "bias", w, b);
    const char *ins[3] = {x, w, b};
    at[0] = ints_attr("kernel_shape", 2, L->k, L->k);
    at[1] = ints_attr("strides", 2, L->stride, L->stride);
    at[2] = ints_attr("pads", 4, p, p);
    at[3] = ints_attr("output_padding", 2, L->same ? L->stride - 1 : 0, L->same ? L->stride - 1 : 0);
    node(g, L->op == AERT_L_CONV ? "Conv" : "ConvTranspose", ins, 2 + has_param(m, L->param, "b"), out, at,
         L->op == AERT_L_CONV ? 3 : 4);
    break;
  }
  case AERT_L_MAXPOOL: case AERT_L_AVGPOOL:
    at[0] = ints_attr("kernel_shape", 2, L->k, L->k);
    at[1] = ints_attr("strides", 2, L->stride, L->stride);
    node(g, L->op == AERT_L_MAXPOOL ? "MaxPool" : "AveragePool", &x, 1, out, at, 2);
    break;
  case AERT_L_UPSAMPLE: {
    char sc[32];
    float scales[4] = {1, 1, (float)L->k, (float)L->k};
    long four[1] = {4};
    const_floats(g, fresh(g, sc), 1, four, scales, 4);
    const char *ins[3] = {x, "", sc};
    at[0] = (attr_t){.name = "mode", .type = A_STRING, .s = L->bilinear ? "linear" : "nearest"};
    at[1] = (attr_t){.name = "coordinate_transformation_mode", .type = A_STRING, .s = L->bilinear ? "half_pixel" : "asymmetric"};
    at[2] = (attr_t){.name = "nearest_mode", .type = A_STRING, .s = "floor"};
    node(g, "Resize", ins, 3, out, at, L->bilinear ? 2 : 3);
    break;
  }
  case AERT_L_FLATTEN: case AERT_L_RESHAPE: emit_view(g, L, &m->graph[L->in[0]], x, out); break;
  case AERT_L_CONCAT: case AERT_L_ADD: {
    char names[AERT_MAX_LAYER_INPUTS][32];
    const char *ins[AERT_MAX_LAYER_INPUTS];
    for (int k = 0; k < L->n_in; k++)
      layer_name(names[k], L->in[k]), ins[k] = names[k];
    if (L->op == AERT_L_ADD && L->n_in > 2) {
      node(g, "Sum", ins, L->n_in, out, NULL, 0);
    } else {
      at[0] = (attr_t){.name = "axis", .type = A_INT, .i = 1};
      node(g, L->op == AERT_L_ADD ? "Add" : "Concat", ins, L->n_in, out, at, L->op == AERT_L_CONCAT);
    }
    break;
  }
  case AERT_L_IDENTITY: case AERT_L_SAMPLE: node(g, "Identity", &x, 1, out, NULL, 0); break;
  case AERT_L_BATCHNORM: {
    char gm[300], bt[300], mn[300], vr[300];
    param_names(L, "weight", "bias", gm, bt);
    param_names(L, "running_mean", "running_var", mn, vr);
    const char *ins[5] = {x, gm, bt, mn, vr};
    at[0] = (attr_t){.name = "epsilon", .type = A_FLOAT, .f = L->alpha};
    node(g, "BatchNormalization", ins, 5, out, at, 1);
    break;
  }
  case AERT_L_RELU: node(g, "Relu", &x, 1, out, NULL, 0); break;
  case AERT_L_SIGMOID: node(g, "Sigmoid", &x, 1, out, NULL, 0); break;
  case AERT_L_TANH: node(g, "Tanh", &x, 1, out, NULL, 0); break;
  case AERT_L_LEAKY_RELU: case AERT_L_ELU:
    at[0] = (attr_t){.name = "alpha", .type = A_FLOAT, .f = L->alpha};
    node(g, L->op == AERT_L_ELU ? "Elu" : "LeakyRelu", &x, 1, out, at, 1);
    break;
  case AERT_L_SOFTMAX:
    at[0] = (attr_t){.name = "axis", .type = A_INT, .i = 1};
    node(g, "Softmax", &x, 1, out, at, 1);
    break;
  default: return aert_error("layer %d of model '%s' has an op the ONNX writer does not know", i, m->name), -1;
  }
  return 0;
}

/* ---- the edges: input normalisation and layouts ------------------------------------------- */
static void io_dims(const onnx_t *g, int rank, const int *shape, long *dims) {
  if (rank != 3) {
    for (int i = 0; i < rank; i++)
      dims[i] = shape[i];
    return;
  }
  long nchw[3] = {shape[2], shape[0], shape[1]}, nhwc[3] = {shape[0], shape[1], shape[2]};
  memcpy(dims, g->nchw_io ? nchw : nhwc, sizeof nchw);
}

/* "input" (raw values) -> normalised NCHW: x * scale + offset, or (x - mean) / std per band. */
static void emit_input(onnx_t *g, const aert_model *m, const aert_train_state *st, char *x) {
  long dims[3];
  io_dims(g, m->in_rank, m->in_shape, dims);
  value_info(g, 11, "input", m->in_rank, dims);
  char a[32], b[32], y[32], z[32];
  long one[1] = {1}, band[3] = {m->in_shape[m->in_rank - 1], 1, 1};
  int per_band = m->data.standardize && st->norm_bands == band[0], C = (int)band[0];
  if (per_band) {
    float inv[AERT_MAX_BANDS];
    for (int c = 0; c < C; c++)
      inv[c] = 1.0f / st->norm_std[c];
    int rank = g->nchw_io && m->in_rank == 3 ? 3 : 1;
    const_floats(g, fresh(g, a), rank, band, st->norm_mean, C);
    const_floats(g, fresh(g, b), rank, band, inv, C);
  } else {
    float scale = m->data.scale, offset = m->data.offset;
    if (scale == 0.0f && offset == 0.0f)
      scale = 1.0f / 255.0f;
    const_floats(g, fresh(g, a), 1, one, &scale, 1);
    const_floats(g, fresh(g, b), 1, one, &offset, 1);
  }
  const char *i1[2] = {"input", a};
  node(g, per_band ? "Sub" : "Mul", i1, 2, fresh(g, y), NULL, 0);
  const char *i2[2] = {y, b};
  node(g, per_band ? "Mul" : "Add", i2, 2, fresh(g, z), NULL, 0);
  if (m->in_rank == 3 && !g->nchw_io)
    transpose(g, z, fresh(g, x), 0, 3, 1, 2);
  else
    snprintf(x, 32, "%s", z);
}

static void emit_output(onnx_t *g, const aert_model *m, int layer, const char *name) {
  const aert_layer *L = &m->graph[layer];
  char v[32];
  long dims[3];
  layer_name(v, layer);
  const char *in = v;
  if (L->rank == 3 && !g->nchw_io)
    transpose(g, v, name, 0, 2, 3, 1);
  else
    node(g, "Identity", &in, 1, name, NULL, 0);
  io_dims(g, L->rank, L->shape, dims);
  value_info(g, 12, name, L->rank, dims);
}

/* Which layers the outputs need (a target and loss-only branches are left out). */
static void mark_needed(const aert_model *m, int i, char *need) {
  if (i < 0 || need[i])
    return;
  need[i] = 1;
  for (int k = 0; k < m->graph[i].n_in; k++)
    mark_needed(m, m->graph[i].in[k], need);
}

int aert_onnx_write(const char *path, const aert_model *m, const aert_tensor_set *torch_weights,
                    const aert_train_state *st, int nchw) {
  if (m->n_graph <= 0)
    return aert_error("model '%s' was generated without its inference graph: rebuild it with this "
                      "aec (bin/aec build) to export ONNX", m->name), -1;
  onnx_t g = {.nchw_io = nchw};
  char *need = aert_alloc((size_t)m->n_graph, "graph");
  if (!need)
    return -1;
  mark_needed(m, m->output_layer, need);
  mark_needed(m, m->latent_layer, need);
  pb_str(&g.graph, 2, m->name);
  for (int i = 0; i < torch_weights->n; i++) {
    const aert_named *t = &torch_weights->t[i];
    const_floats(&g, t->name, t->rank, t->shape, t->data, t->size);
  }
  char x[32];
  emit_input(&g, m, st, x);
  int rc = 0;
  for (int i = 0; i < m->n_graph && rc == 0; i++)
    if (need[i])
      rc = emit_layer(&g, m, i, x);
  free(need);
  if (rc == 0) {
    emit_output(&g, m, m->output_layer, "output");
    if (m->latent_layer >= 0 && m->latent_layer != m->output_layer && m->graph[m->latent_layer].op != AERT_L_INPUT)
      emit_output(&g, m, m->latent_layer, "latent");
  }
  aert_buf model = {0}, opset = {0};
  pb_int(&model, 1, 8);                  /* ir_version */
  pb_str(&model, 2, "aec");              /* producer_name */
  pb_str(&opset, 1, "");
  pb_int(&opset, 2, 17);
  pb_msg(&model, 8, &opset);
  pb_msg(&model, 7, &g.graph);
  if (rc == 0 && model.failed)
    rc = (aert_error("out of memory writing '%s'", path), -1);
  if (rc == 0)
    rc = aert_write_file_atomic(path, model.p, model.n);
  free(model.p);
  free(g.graph.p);
  return rc;
}
