/* ops.c - the built-in layers: their argument lists, the rules that give each output
 * its fixed shape, and their parameter and FLOP counts. Shape errors say which layer
 * made a size what it is, because that is what makes autoencoders hard to write. */
#include "aec.h"

#include <math.h>
#include <string.h>

#define AE_MAX_LAYER_PARAMS (1L << 30)   /* 4 GiB of weights in one layer */

#define ACT(name, e, graph) {name, true, {"x"}, 1, false, AE_OP_ACTIVATION, K_ACT, WEIGHTS_NONE, e, graph}
#define TENSOR_OP(kernel, graph) 0, kernel, WEIGHTS_NONE, NULL, graph

static const ae_op_info ops[OP__COUNT] = {
  [OP_INPUT] = {"input", false, {0}, 0, false, 0, K_ACT, WEIGHTS_NONE, NULL, "INPUT"},
  [OP_TARGET] = {"target", false, {0}, 0, false, 0, K_ACT, WEIGHTS_NONE, NULL, "TARGET"},
  [OP_DENSE] = {"dense", true, {"x", "units", "bias"}, 2, false, AE_OP_FUSES_ACT, K_DENSE, WEIGHTS_DENSE, NULL, "DENSE",
                BACKWARD_LAYER},
  [OP_CONV] = {"conv", true, {"x", "filters", "k", "stride", "padding", "bias"}, 2, false, AE_OP_FUSES_ACT, K_CONV,
               WEIGHTS_CONV, NULL, "CONV", BACKWARD_LAYER},
  [OP_CONV_T] = {"conv_transpose", true, {"x", "filters", "k", "stride", "padding", "bias"}, 2, false, AE_OP_FUSES_ACT,
                 K_CONV_T, WEIGHTS_CONV_T, NULL, "CONV_T", BACKWARD_LAYER},
  [OP_MAXPOOL] = {"maxpool", true, {"x", "size", "stride"}, 1, false, TENSOR_OP(K_POOL, "MAXPOOL")},
  [OP_AVGPOOL] = {"avgpool", true, {"x", "size", "stride"}, 1, false, TENSOR_OP(K_POOL, "AVGPOOL")},
  [OP_UPSAMPLE] = {"upsample", true, {"x", "factor", "mode"}, 1, false, AE_OP_FOLDABLE, K_UPSAMPLE, WEIGHTS_NONE, NULL,
                   "UPSAMPLE"},
  [OP_FLATTEN] = {"flatten", true, {"x"}, 1, false, AE_OP_VIEW, K_ACT, WEIGHTS_NONE, NULL, "FLATTEN"},
  [OP_RESHAPE] = {"reshape", true, {"x", "shape"}, 2, false, AE_OP_VIEW, K_ACT, WEIGHTS_NONE, NULL, "RESHAPE"},
  [OP_CONCAT] = {"concat", true, {0}, 2, true, AE_OP_FOLDABLE, K_CONCAT, WEIGHTS_NONE, NULL, "CONCAT"},
  [OP_ADD] = {"add", true, {0}, 2, true, TENSOR_OP(K_ADD, "ADD")},
  [OP_DROPOUT] = {"dropout", true, {"x", "rate"}, 2, false, TENSOR_OP(K_DROPOUT, "IDENTITY")},
  [OP_BATCHNORM] = {"batchnorm", true, {"x", "momentum", "eps"}, 1, false, AE_OP_FUSES_ACT, K_BATCHNORM,
                    WEIGHTS_BATCHNORM, NULL, "BATCHNORM", BACKWARD_NORM},
  [OP_NOISE] = {"gaussian_noise", true, {"x", "stddev", "min", "max"}, 2, false, TENSOR_OP(K_NOISE, "IDENTITY")},
  [OP_SAMPLE] = {"sample", true, {"mu", "logvar"}, 2, false, TENSOR_OP(K_SAMPLE, "SAMPLE")},
  [OP_RELU] = ACT("relu", "AERT_ACT_RELU", "RELU"),
  [OP_LEAKY_RELU] = {"leaky_relu", true, {"x", "alpha"}, 1, false, AE_OP_ACTIVATION, K_ACT, WEIGHTS_NONE,
                     "AERT_ACT_LEAKY_RELU", "LEAKY_RELU"},
  [OP_ELU] = {"elu", true, {"x", "alpha"}, 1, false, AE_OP_ACTIVATION, K_ACT, WEIGHTS_NONE, "AERT_ACT_ELU", "ELU"},
  [OP_SIGMOID] = ACT("sigmoid", "AERT_ACT_SIGMOID", "SIGMOID"),
  [OP_TANH] = ACT("tanh", "AERT_ACT_TANH", "TANH"),
  /* softmax normalises a whole row: an activation, but never an epilogue */
  [OP_SOFTMAX] = {"softmax", true, {"x"}, 1, false, AE_OP_ACTIVATION, K_SOFTMAX, WEIGHTS_NONE, NULL, "SOFTMAX"},
  [OP_LINEAR] = {"linear", true, {"x"}, 1, false, AE_OP_ACTIVATION | AE_OP_VIEW, K_ACT, WEIGHTS_NONE, "AERT_ACT_LINEAR",
                 "IDENTITY"},
};

static const char *const loss_names[LOSS__COUNT] = {
  "mse", "bce", "softmax_xent", "l1", "kl_sparsity", "kl_normal", "l2", "dice", "jaccard", "focal",
};

const ae_op_info *ae_op_info_of(ae_op op) { return &ops[op]; }
const char *ae_op_name(ae_op op) { return ops[op].name; }
const char *ae_loss_name(ae_loss_kind k) { return loss_names[k]; }
bool ae_loss_on_classes(ae_loss_kind k) {
  return k == LOSS_SOFTMAX_XENT || k == LOSS_DICE || k == LOSS_JACCARD || k == LOSS_FOCAL;
}
bool ae_op_is_activation(ae_op op) { return ops[op].traits & AE_OP_ACTIVATION; }
bool ae_op_has_params(ae_op op) { return ops[op].weights != WEIGHTS_NONE; }

static const ae_op_info *find_layer(const char *name, ae_op *op) {
  for (int i = 0; i < OP__COUNT; i++)
    if (ops[i].callable && strcmp(ops[i].name, name) == 0) { *op = (ae_op)i; return &ops[i]; }
  return NULL;
}

/* A layer as one short phrase for tables: "conv 3x3 /2", "upsample x2 bilinear". */
const char *ae_op_desc(const ae_node *n, char *buf) {
  char *start = buf;
  const char *op = ae_op_name(n->op);
  switch (n->op) {
  case OP_CONV: case OP_CONV_T:
    buf += sprintf(buf, "%s %dx%d", op, n->k, n->k);
    if (n->stride > 1) buf += sprintf(buf, " /%d", n->stride);
    if (!n->pad_same) strcpy(buf, " valid");
    return start;
  case OP_MAXPOOL: case OP_AVGPOOL: sprintf(buf, "%s %d", op, n->k); break;
  case OP_UPSAMPLE: sprintf(buf, "upsample x%d%s", n->factor, n->bilinear ? " bilinear" : ""); break;
  case OP_LEAKY_RELU: sprintf(buf, "leaky_relu %g", n->alpha); break;
  case OP_DROPOUT: sprintf(buf, "dropout %g", n->rate); break;
  case OP_NOISE: sprintf(buf, "noise %g", n->stddev); break;
  default: strcpy(buf, op);
  }
  return buf;
}

bool ae_is_layer_name(const char *name) {
  ae_op op;
  return find_layer(name, &op) != NULL;
}

int ae_layer_names(const char **out, int cap) {
  int n = 0;
  for (int i = 0; i < OP__COUNT && n < cap; i++)
    if (ops[i].callable) out[n++] = ops[i].name;
  return n;
}

long ae_shape_elems(ae_shape s) {
  long n = 1;
  for (int i = 0; i < s.rank; i++) n *= s.d[i];
  return n;
}

const char *ae_shape_str(ae_shape s, char *buf) {
  if (s.rank == 0) { strcpy(buf, "scalar"); return buf; }
  char *p = buf;
  for (int i = 0; i < s.rank; i++) p += sprintf(p, i ? "x%d" : "%d", s.d[i]);
  return buf;
}

const char *ae_value_desc(const ae_value *v, char *buf, size_t cap) {
  char sh[48];
  switch (v->kind) {
  case V_NUM: snprintf(buf, cap, "the number %g", v->num); break;
  case V_STR: snprintf(buf, cap, "the string \"%.40s\"", v->str); break;
  case V_WORD: snprintf(buf, cap, "the word '%.40s'", v->str); break;
  case V_LIST: snprintf(buf, cap, "a list"); break;
  case V_TENSOR: snprintf(buf, cap, "a tensor %s", ae_shape_str(v->node->shape, sh)); break;
  case V_LOSS: snprintf(buf, cap, "a loss"); break;
  case V_CALL: snprintf(buf, cap, "%.40s(...)", v->call->str); break;
  }
  return buf;
}

bool ae_value_int(ae_diag *d, const ae_value *v, const char *what, long lo, long hi, int *out) {
  char desc[96];
  if (v->kind != V_NUM || !v->is_int) {
    ae_error(d, v->loc, "%s must be a whole number, not %s", what, ae_value_desc(v, desc, sizeof desc));
    return false;
  }
  if (v->num < (double)lo || v->num > (double)hi) {
    ae_error(d, v->loc, "%s must be from %ld to %ld, not %.0f", what, lo, hi, v->num);
    return false;
  }
  *out = (int)v->num;
  return true;
}

bool ae_value_num(ae_diag *d, const ae_value *v, const char *what, double *out) {
  char desc[96];
  if (v->kind != V_NUM) {
    ae_error(d, v->loc, "%s must be a number, not %s", what, ae_value_desc(v, desc, sizeof desc));
    return false;
  }
  *out = v->num;
  return true;
}

/* "x, filters, k, stride, padding" into buf. */
static const char *arg_list(const char *const *names, int n, char *buf, size_t cap) {
  buf[0] = 0;
  for (int j = 0; j < n; j++) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", j ? ", " : "", names[j]);
  return buf;
}

/* The argument a misspelt keyword most likely means: a near name, or the short name
 * that the long one starts with (kernel -> k). */
static const char *closest_arg(const char *kw, const char *const *names, int n) {
  const char *near = ae_closest(kw, names, n);
  for (int j = 0; !near && j < n; j++)
    if (strncmp(kw, names[j], strlen(names[j])) == 0 || strncmp(kw, names[j], strlen(kw)) == 0) near = names[j];
  return near;
}

bool ae_bind_args(ae_diag *d, const ae_expr *call, const char *const *names, int n_names,
                  ae_value **args, const char **kw, int n, ae_value **out) {
  bool ok = true;
  int pos = 0;
  char list[160];
  for (int i = 0; i < n_names; i++) out[i] = NULL;
  for (int i = 0; i < n; i++) {
    int slot = -1;
    if (!kw[i]) {
      if (pos >= n_names) {
        ae_error(d, args[i]->loc, "%s takes at most %d argument%s", call->str, n_names, n_names == 1 ? "" : "s");
        if (n_names) ae_hint(d, "%s takes: %s", call->str, arg_list(names, n_names, list, sizeof list));
        return false;
      }
      slot = pos++;
    } else {
      for (int j = 0; j < n_names; j++)
        if (strcmp(names[j], kw[i]) == 0) slot = j;
      if (slot < 0) {
        ae_error(d, args[i]->loc, "%s has no argument '%s'", call->str, kw[i]);
        const char *near = closest_arg(kw[i], names, n_names);
        if (near) ae_hint(d, "did you mean '%s'?", near);
        else ae_hint(d, "%s takes: %s", call->str, arg_list(names, n_names, list, sizeof list));
        ok = false;
        continue;
      }
    }
    if (out[slot]) {
      ae_error(d, args[i]->loc, "argument '%s' of %s is given twice", names[slot], call->str);
      ae_note_at(d, out[slot]->loc, "'%s' is first given here", names[slot]);
      ok = false;
    }
    out[slot] = args[i];
  }
  return ok;
}

/* ---- shape explanations ------------------------------------------------------- */

static bool same_spatial(ae_shape a, ae_shape b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i + 1 < a.rank; i++) if (a.d[i] != b.d[i]) return false;
  return true;
}

static const char *layer_args_desc(const ae_node *n, char *buf) {
  switch (n->op) {
  case OP_CONV: case OP_CONV_T:
    sprintf(buf, " (k=%d, stride=%d, padding=%s)", n->k, n->stride, n->pad_same ? "same" : "valid"); break;
  case OP_MAXPOOL: case OP_AVGPOOL: sprintf(buf, " (size=%d, stride=%d)", n->k, n->stride); break;
  case OP_UPSAMPLE: sprintf(buf, " (factor %d)", n->factor); break;
  default: buf[0] = 0;
  }
  return buf;
}

/* Whether layer p sets the size that matters for its kind of value: the height and
 * width of an image, the length of a vector, or a new rank (reshape). */
static bool changes_size(const ae_node *p) {
  const ae_node *src = p->in.items[0];
  if (p->op == OP_FLATTEN) return false;
  if (p->shape.rank != src->shape.rank) return true;
  if (p->shape.rank == 1) return p->shape.d[0] != src->shape.d[0];
  return !same_spatial(p->shape, src->shape);
}

void ae_explain_size(ae_diag *d, const ae_node *n, const char *what) {
  const ae_node *changes[4], *root = n;
  int k = 0;
  bool valid_conv = false;
  int most = n->shape.rank == 1 ? 1 : 4;   /* a vector's length is set by one layer */
  for (const ae_node *p = n; p && p->in.len > 0; p = p->in.items[0]) {
    if (changes_size(p) && k < most) changes[k++] = p;
    root = p->in.items[0];
  }
  char a[48], b[48], whole[48], extra[80];
  if (k == 0) {
    bool image = n->shape.rank == 3 && n != root;
    ae_hint(d, "%s is %s: %s '%s' declared at line %d", what, ae_shape_str(n->shape, a),
            image ? "its height and width are those of" : "the size of", root->name ? root->name : "?", root->loc.line);
    return;
  }
  for (int i = 0; i < k; i++) {
    const ae_node *p = changes[i];
    if (i == 0) ae_hint(d, "%s is %s: %s at line %d%s makes %s into %s", what, ae_shape_str(n->shape, whole),
                        ae_op_name(p->op), p->loc.line, layer_args_desc(p, extra),
                        ae_shape_str(((ae_node *)p->in.items[0])->shape, a), ae_shape_str(p->shape, b));
    else ae_hint(d, "before that, %s at line %d%s makes %s into %s", ae_op_name(p->op), p->loc.line,
                 layer_args_desc(p, extra), ae_shape_str(((ae_node *)p->in.items[0])->shape, a),
                 ae_shape_str(p->shape, b));
    valid_conv = valid_conv || ((p->op == OP_CONV || p->op == OP_CONV_T) && !p->pad_same && p->k > 1);
  }
  if (valid_conv)
    ae_hint(d, "with padding=valid the size depends on k; padding=same gives exactly "
               "size / stride (conv) or size x stride (conv_transpose)");
}

/* ---- one function per shape rule ------------------------------------------------ */

/* A square image shape with few channels that holds n values: 784 -> 28x28x1. */
static bool square_image(long n, long *side, long *channels) {
  static const int tries[] = {1, 3, 2, 4, 8, 16, 32, 64, 128, 256};
  for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
    if (n % tries[i]) continue;
    long plane = n / tries[i], r = lround(sqrt((double)plane));
    if (r > 1 && r * r == plane) { *side = r; *channels = tries[i]; return true; }
  }
  return false;
}

static bool need_rank(ae_layer_ctx *c, const ae_expr *call, ae_node *x, int rank) {
  if (x->shape.rank == rank) return true;
  char s[48];
  const char *name = x->name ? x->name : "x";
  long side, ch;
  if (rank == 3)
    ae_error(c->diag, call->loc, "%s needs an image of height x width x channels, but its input is %s",
             call->str, ae_shape_str(x->shape, s));
  else
    ae_error(c->diag, call->loc, "%s needs a flat vector, but its input is %s", call->str, ae_shape_str(x->shape, s));
  if (rank == 3 && x->shape.rank == 1 && square_image(x->shape.d[0], &side, &ch))
    ae_hint(c->diag, "reshape it first, e.g. reshape(%s, [%ld, %ld, %ld])", name, side, side, ch);
  else if (rank == 3 && x->shape.rank == 1)
    ae_hint(c->diag, "reshape it first: reshape(%s, [h, w, c]) with h*w*c = %d", name, x->shape.d[0]);
  if (rank == 3 && x->shape.rank == 2) ae_hint(c->diag, "give the input a channel axis: f32[%d, %d, 1]", x->shape.d[0], x->shape.d[1]);
  if (rank == 1) ae_hint(c->diag, "flatten it first: %s(flatten(%s), ...)", call->str, name);
  return false;
}

/* Output size of a sliding window; an error when the window does not tile the input. */
static bool window_out(ae_layer_ctx *c, const ae_expr *call, ae_node *x, int axis, int k, int s, bool same, int *out) {
  int in = x->shape.d[axis];
  const char *dim = axis == 0 ? "height" : "width";
  bool pool = strcmp(call->str, "maxpool") == 0 || strcmp(call->str, "avgpool") == 0;
  if (same) {
    if (in % s != 0) {
      ae_error(c->diag, call->loc, "stride %d does not divide the input %s %d", s, dim, in);
      ae_explain_size(c->diag, x, "the input");
      ae_hint(c->diag, "a decoder cannot restore a size that was rounded; make the %s a multiple of %d", dim, s);
      return false;
    }
    *out = in / s;
    return true;
  }
  if (in < k) {
    ae_error(c->diag, call->loc, "%s %d is larger than the input %s %d", pool ? "pool size" : "kernel", k, dim, in);
    ae_explain_size(c->diag, x, "the input");
    return false;
  }
  int left = (in - k) % s;
  if (left != 0) {
    ae_error(c->diag, call->loc, "%s %d with stride %d does not tile the input %s %d: %d pixel%s would be dropped",
             pool ? "pool size" : "kernel", k, s, dim, in, left, left == 1 ? "" : "s");
    ae_explain_size(c->diag, x, "the input");
    if (pool) ae_hint(c->diag, "a decoder cannot restore the dropped pixels; make the %s a multiple of %d", dim, s);
    else ae_hint(c->diag, "with padding=valid the %s must be k plus a multiple of the stride: use k=%d, or padding=same",
                 dim, k + left <= in ? k + left : k - (s - left));
    return false;
  }
  *out = (in - k) / s + 1;
  return true;
}

static bool get_int(ae_layer_ctx *c, ae_value *v, const char *what, long lo, long hi, int deflt, int *out) {
  if (!v) { *out = deflt; return true; }
  return ae_value_int(c->diag, v, what, lo, hi, out);
}

static bool get_num(ae_layer_ctx *c, ae_value *v, const char *what, double lo, double hi, double deflt, double *out) {
  double x = deflt;
  if (v && !ae_value_num(c->diag, v, what, &x)) return false;
  if (!(x >= lo && x <= hi)) {
    ae_error(c->diag, v->loc, "%s must be from %g to %g, not %g", what, lo, hi, x);
    return false;
  }
  *out = x;
  return true;
}

/* bias=true|false on dense, conv and conv_transpose: a bias before a batch norm is dead
 * weight, since the norm subtracts it again. */
static bool get_bias(ae_layer_ctx *c, ae_value *v, ae_node *n) {
  if (!v) return true;
  if (v->kind == V_WORD && (strcmp(v->str, "true") == 0 || strcmp(v->str, "false") == 0)) {
    n->no_bias = strcmp(v->str, "false") == 0;
    if (n->no_bias) n->n_params -= n->units;
    return true;
  }
  char desc[96];
  ae_error(c->diag, v->loc, "bias must be true or false, not %s", ae_value_desc(v, desc, sizeof desc));
  return false;
}

static bool get_padding(ae_layer_ctx *c, ae_value *v, bool *same) {
  *same = true;
  if (!v) return true;
  if (v->kind == V_WORD && (strcmp(v->str, "same") == 0 || strcmp(v->str, "valid") == 0)) {
    *same = strcmp(v->str, "same") == 0;
    return true;
  }
  char desc[96];
  ae_error(c->diag, v->loc, "padding must be same or valid, not %s", ae_value_desc(v, desc, sizeof desc));
  return false;
}

static bool infer_conv(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_node *x, ae_value **a) {
  if (!need_rank(c, call, x, 3)) return false;
  if (!get_int(c, a[1], "the number of filters", 1, 65536, 0, &n->units) ||
      !get_int(c, a[2], "the kernel size k", 1, 64, 3, &n->k) ||
      !get_int(c, a[3], "the stride", 1, 64, n->op == OP_CONV_T ? 2 : 1, &n->stride) ||
      !get_padding(c, a[4], &n->pad_same))
    return false;
  if (n->pad_same && n->k % 2 == 0) {
    ae_error(c->diag, a[2] ? a[2]->loc : call->loc, "padding=same needs an odd kernel, not k=%d", n->k);
    ae_hint(c->diag, "an even kernel cannot be centred: use k=%d or padding=valid", n->k + 1);
    return false;
  }
  int cin = x->shape.d[2], h, w;
  if (n->op == OP_CONV) {
    if (!window_out(c, call, x, 0, n->k, n->stride, n->pad_same, &h) ||
        !window_out(c, call, x, 1, n->k, n->stride, n->pad_same, &w))
      return false;
  } else {
    h = n->pad_same ? x->shape.d[0] * n->stride : (x->shape.d[0] - 1) * n->stride + n->k;
    w = n->pad_same ? x->shape.d[1] * n->stride : (x->shape.d[1] - 1) * n->stride + n->k;
  }
  n->shape = (ae_shape){3, {h, w, n->units}};
  n->n_params = (long)n->k * n->k * cin * n->units + n->units;
  double positions = n->op == OP_CONV ? (double)h * w : (double)x->shape.d[0] * x->shape.d[1];
  n->flops = 2.0 * positions * n->k * n->k * cin * n->units;
  return get_bias(c, a[5], n);
}

static bool infer_pool(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_node *x, ae_value **a) {
  if (!need_rank(c, call, x, 3)) return false;
  if (!get_int(c, a[1], "the pool size", 1, 64, 2, &n->k) ||
      !get_int(c, a[2], "the stride", 1, 64, n->k, &n->stride))
    return false;
  int h, w;
  if (!window_out(c, call, x, 0, n->k, n->stride, false, &h) ||
      !window_out(c, call, x, 1, n->k, n->stride, false, &w))
    return false;
  n->shape = (ae_shape){3, {h, w, x->shape.d[2]}};
  return true;
}

static bool infer_upsample(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_node *x, ae_value **a) {
  if (!need_rank(c, call, x, 3) || !get_int(c, a[1], "the upsampling factor", 1, 64, 2, &n->factor))
    return false;
  bool known = a[2] && a[2]->kind == V_WORD && (strcmp(a[2]->str, "nearest") == 0 || strcmp(a[2]->str, "bilinear") == 0);
  if (a[2] && !known) {
    char desc[96];
    ae_error(c->diag, a[2]->loc, "upsample mode must be nearest or bilinear, not %s", ae_value_desc(a[2], desc, sizeof desc));
    if (a[2]->kind == V_STR && (strcmp(a[2]->str, "nearest") == 0 || strcmp(a[2]->str, "bilinear") == 0))
      ae_hint(c->diag, "the mode is a word, not a string: mode = %s", a[2]->str);
    else ae_hint(c->diag, "for a learned upsampling use conv_transpose(x, filters, k=3, stride=2)");
    return false;
  }
  n->bilinear = known && strcmp(a[2]->str, "bilinear") == 0;
  long h = (long)x->shape.d[0] * n->factor, w = (long)x->shape.d[1] * n->factor;
  if (h > AE_MAX_DIM || w > AE_MAX_DIM) {
    ae_error(c->diag, call->loc, "upsampling makes an image of %ldx%ld, larger than aec allows", h, w);
    return false;
  }
  n->shape = (ae_shape){3, {(int)h, (int)w, x->shape.d[2]}};
  return true;
}

static bool infer_reshape(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_node *x, ae_value **a) {
  ae_value *s = a[1];
  char desc[96];
  if (s->kind != V_LIST || s->items.len < 1 || s->items.len > AE_MAX_RANK) {
    ae_error(c->diag, s->loc, "reshape needs a list of 1 to 3 sizes such as [7, 7, 64], not %s",
             ae_value_desc(s, desc, sizeof desc));
    return false;
  }
  n->shape.rank = s->items.len;
  for (int i = 0; i < s->items.len; i++)
    if (!ae_value_int(c->diag, s->items.items[i], "a size", 1, AE_MAX_DIM, &n->shape.d[i])) return false;
  if (ae_shape_elems(n->shape) != ae_shape_elems(x->shape)) {
    long want = ae_shape_elems(n->shape), have = ae_shape_elems(x->shape);
    ae_error(c->diag, s->loc, "reshape to %s needs %ld values, but its input has %ld", ae_shape_str(n->shape, desc), want, have);
    ae_explain_size(c->diag, x, "the input");
    long plane = n->shape.rank == 3 ? (long)n->shape.d[0] * n->shape.d[1] : 0;
    if (plane && have % plane == 0)
      ae_hint(c->diag, "[%d, %d, %ld] would fit %ld values", n->shape.d[0], n->shape.d[1], have / plane, have);
    return false;
  }
  return true;
}

static bool infer_join(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_value **args, int n_args) {
  ae_node *first = n->in.items[0];
  char a[48], b[48];
  n->shape = first->shape;
  for (int i = 1; i < n->in.len; i++) {
    ae_node *x = n->in.items[i];
    bool vectors = x->shape.rank == 1 && first->shape.rank == 1;   /* concat joins two vectors end to end */
    bool ok = n->op == OP_ADD ? ae_shape_elems(x->shape) == ae_shape_elems(first->shape) && x->shape.rank == first->shape.rank
                              : vectors || (same_spatial(x->shape, first->shape) && x->shape.rank == 3);
    for (int j = 0; ok && n->op == OP_ADD && j < x->shape.rank; j++) ok = x->shape.d[j] == first->shape.d[j];
    if (!ok) {
      if (n->op == OP_CONCAT && (x->shape.rank != 3 || first->shape.rank != 3)) {
        const ae_node *flat = x->shape.rank != 3 ? x : first, *other = flat == x ? first : x;
        if (other->shape.rank != 3 && flat->shape.rank == 1) flat = other, other = flat == x ? first : x;   /* the map */
        const char *what = flat->shape.rank == 1 ? "the vector" : "the map", *name = flat->name ? flat->name : "v";
        ae_error(c->diag, args[i]->loc, "concat joins images along their channels or vectors end to end, but got %s and %s",
                 ae_shape_str(first->shape, a), ae_shape_str(x->shape, b));
        if (other->shape.rank == 3)
          ae_hint(c->diag, "%s%s%s is not an image; reshape it first, e.g. reshape(%s, [h, w, c]) with h*w*c = %ld",
                  flat->name ? "'" : "", flat->name ? flat->name : what, flat->name ? "'" : "", name, ae_shape_elems(flat->shape));
        else
          ae_hint(c->diag, "%s%s%s is not a vector; flatten it first: flatten(%s)", flat->name ? "'" : "",
                  flat->name ? flat->name : what, flat->name ? "'" : "", flat->name ? flat->name : "...");
        if (flat->shape.rank == 1 && other->shape.rank == 3)
          ae_hint(c->diag, "or join two vectors: concat(flatten(%s), %s)", other->name ? other->name : "x", name);
        return false;
      }
      ae_error(c->diag, args[i]->loc, "%s needs %s, but its inputs are %s and %s",
               call->str, n->op == OP_ADD ? "equal shapes" : "equal heights and widths",
               ae_shape_str(first->shape, a), ae_shape_str(x->shape, b));
      ae_explain_size(c->diag, first, first->name ? first->name : "the first input");
      ae_explain_size(c->diag, x, x->name ? x->name : "this input");
      return false;
    }
    if (n->op == OP_CONCAT) n->shape.d[n->shape.rank - 1] += x->shape.d[x->shape.rank - 1];
  }
  return true;
}

static bool infer_elementwise(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_node *x, ae_value **a) {
  n->shape = x->shape;
  switch (n->op) {
  case OP_SOFTMAX:   /* legal, and almost surely not what was meant */
    if (x->shape.d[x->shape.rank - 1] == 1) {
      ae_warning(c->diag, call->loc, "softmax over a last axis of one value is always 1: its output "
                 "carries nothing, and no gradient passes back through it");
      ae_hint(c->diag, "for one channel use sigmoid; softmax normalises across the values of the last axis");
    }
    return true;
  case OP_LEAKY_RELU: return get_num(c, a[1], "alpha", 0, 1, 0.01, &n->alpha);
  case OP_ELU: return get_num(c, a[1], "alpha", 0, 100, 1.0, &n->alpha);
  case OP_DROPOUT: return get_num(c, a[1], "the dropout rate", 0, 0.999, 0, &n->rate);
  case OP_NOISE:
    return get_num(c, a[1], "stddev", 0, 1e6, 0, &n->stddev) && get_num(c, a[2], "min", -1e30, 1e30, 0, &n->lo) &&
           get_num(c, a[3], "max", -1e30, 1e30, 1, &n->hi);
  case OP_BATCHNORM:
    n->n_params = 2L * x->shape.d[x->shape.rank - 1];
    return get_num(c, a[1], "momentum", 0, 1, 0.1, &n->momentum) && get_num(c, a[2], "eps", 1e-12, 1, 1e-5, &n->eps);
  default: return true;
  }
}

static bool infer_sample(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_value **a) {
  ae_node *mu = n->in.items[0], *lv = n->in.items[1];
  char s1[48], s2[48];
  n->shape = mu->shape;
  if (ae_shape_elems(mu->shape) != ae_shape_elems(lv->shape) || mu->shape.rank != lv->shape.rank) {
    ae_error(c->diag, a[1]->loc, "sample needs mu and logvar of one shape, but they are %s and %s",
             ae_shape_str(mu->shape, s1), ae_shape_str(lv->shape, s2));
    ae_explain_size(c->diag, mu, "mu");
    ae_explain_size(c->diag, lv, "logvar");
    return false;
  }
  return true;
}

static bool infer_shape(ae_layer_ctx *c, const ae_expr *call, ae_node *n, ae_value **a, ae_value **args, int n_args) {
  ae_node *x = n->in.items[0];
  switch (n->op) {
  case OP_DENSE:
    if (!need_rank(c, call, x, 1) || !get_int(c, a[1], "the number of units", 1, 1 << 24, 0, &n->units)) return false;
    n->shape = (ae_shape){1, {n->units}};
    n->n_params = (long)x->shape.d[0] * n->units + n->units;
    n->flops = 2.0 * x->shape.d[0] * n->units;
    return get_bias(c, a[2], n);
  case OP_CONV: case OP_CONV_T: return infer_conv(c, call, n, x, a);
  case OP_MAXPOOL: case OP_AVGPOOL: return infer_pool(c, call, n, x, a);
  case OP_UPSAMPLE: return infer_upsample(c, call, n, x, a);
  case OP_FLATTEN: n->shape = (ae_shape){1, {(int)ae_shape_elems(x->shape)}}; return true;
  case OP_RESHAPE: return infer_reshape(c, call, n, x, a);
  case OP_CONCAT: case OP_ADD: return infer_join(c, call, n, args, n_args);
  case OP_SAMPLE: return infer_sample(c, call, n, a);
  default: return infer_elementwise(c, call, n, x, a);
  }
}

ae_node *ae_make_layer(ae_layer_ctx *c, const ae_expr *call, ae_value **args, const char **kw, int n_args) {
  ae_op op;
  const ae_op_info *sig = find_layer(call->str, &op);
  ae_value *a[6] = {0};
  char desc[96];
  if (sig->variadic) {
    for (int i = 0; i < n_args; i++)
      if (kw[i]) { ae_error(c->diag, args[i]->loc, "%s takes only tensors, not '%s='", sig->name, kw[i]); return NULL; }
    if (n_args < 2) { ae_error(c->diag, call->loc, "%s needs at least two tensors", sig->name); return NULL; }
  } else {
    int n_names = 0;
    while (n_names < 6 && sig->args[n_names]) n_names++;
    if (!ae_bind_args(c->diag, call, sig->args, n_names, args, kw, n_args, a)) return NULL;
    for (int i = 0; i < sig->required; i++)
      if (!a[i]) {
        char list[160];
        ae_error(c->diag, call->loc, "%s needs the argument '%s'", sig->name, sig->args[i]);
        if (i == 0) ae_hint(c->diag, "pass a tensor first, or pipe one in: h |> %s", sig->name);
        else ae_hint(c->diag, "%s takes: %s; the first %d are required", sig->name,
                     arg_list(sig->args, n_names, list, sizeof list), sig->required);
        return NULL;
      }
  }
  ae_node *n = ae_alloc(c->arena, sizeof *n);
  n->op = op;
  n->loc = call->loc;
  int n_inputs = sig->variadic ? n_args : op == OP_SAMPLE ? 2 : 1;
  for (int i = 0; i < n_inputs; i++) {
    ae_value *v = sig->variadic ? args[i] : a[i];
    if (v->kind != V_TENSOR) {
      ae_error(c->diag, v->loc, "%s needs a tensor here, not %s", sig->name, ae_value_desc(v, desc, sizeof desc));
      if (v->kind == V_WORD) ae_hint(c->diag, "'%s' is not defined above this line", v->str);
      return NULL;
    }
    ae_vec_push(c->arena, &n->in, v->node);
  }
  if (!infer_shape(c, call, n, a, args, n_args)) return NULL;
  if (ae_shape_elems(n->shape) > (1L << 31) / 4) {
    ae_error(c->diag, call->loc, "this layer's output has %ld values per example, more than aec allows", ae_shape_elems(n->shape));
    return NULL;
  }
  if (n->n_params > AE_MAX_LAYER_PARAMS) {
    ae_error(c->diag, call->loc, "this layer has %ld parameters, more than aec allows (%ld)", n->n_params,
             (long)AE_MAX_LAYER_PARAMS);
    return NULL;
  }
  if (ae_op_has_params(n->op)) {
    n->name = (char *)c->name;
    n->frozen = c->frozen;
    n->init_from = c->init_from;
    n->init_name = c->init_name;
  }
  n->id = c->model->nodes.len;
  ae_vec_push(c->arena, &c->model->nodes, n);
  return n;
}
