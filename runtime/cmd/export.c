/* export.c - trained weights in and out of aec: `init` (the step-0 checkpoint of a seed),
 * `export` (a checkpoint's parameters as safetensors or npz) and `import` (such a file to a
 * checkpoint), in aec's layout or PyTorch's: the names and transposes of docs/weights.md. */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

/* ---- PyTorch's layout -------------------------------------------------------------- */
/* Which layer a weight belongs to: from the model's graph table (the layer whose
 * parameters the weight is), else, for code generated before the table, from its shape and
 * fans (ir.c): dense [in, out]; conv [k, k, in, out], fans k*k*in and k*k*out;
 * conv_transpose [in, k, k, out], fans k*k*out and k*k*in. */
typedef enum { PLAIN, DENSE, CONV, CONV_T, AMBIGUOUS } weight_kind;

static weight_kind kind_of(const aert_model *m, const aert_param *p) {
  size_t n = strlen(p->name);
  if (p->rank < 2 || n < 3 || strcmp(p->name + n - 2, ".w"))
    return PLAIN;
  for (int i = 0; i < m->n_graph; i++) {
    const aert_layer *L = &m->graph[i];
    if (L->param && strlen(L->param) == n - 2 && !strncmp(L->param, p->name, n - 2))
      return L->op == AERT_L_DENSE ? DENSE : L->op == AERT_L_CONV ? CONV : L->op == AERT_L_CONV_T ? CONV_T : PLAIN;
  }
  if (p->rank == 2)
    return DENSE;
  if (p->rank != 4)
    return PLAIN;
  long a = p->shape[0], b = p->shape[1], c = p->shape[2], d = p->shape[3];
  int conv = a == b && p->fan_in == a * b * c && p->fan_out == a * b * d;
  int conv_t = b == c && p->fan_in == b * c * d && p->fan_out == a * b * c;
  return conv && conv_t ? AMBIGUOUS : conv ? CONV : conv_t ? CONV_T : AMBIGUOUS;
}

/* torch axis j is aec axis perm[j] */
static const int *torch_perm(weight_kind k) {
  static const int dense[] = {1, 0}, conv[] = {3, 2, 0, 1}, conv_t[] = {0, 3, 1, 2},
                   same[] = {0, 1, 2, 3};
  return k == DENSE ? dense : k == CONV ? conv : k == CONV_T ? conv_t : same;
}

static const char *const suffixes[][2] = {
    {".w", ".weight"}, {".b", ".bias"}, {".gamma", ".weight"}, {".beta", ".bias"},
    {".mean", ".running_mean"}, {".var", ".running_var"}};

static void torch_name(const char *aec, char *out, size_t n) {
  size_t len = strlen(aec);
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    size_t k = strlen(suffixes[i][0]);
    if (len > k && !strcmp(aec + len - k, suffixes[i][0])) {
      snprintf(out, n, "%.*s%s", (int)(len - k), aec, suffixes[i][1]);
      return;
    }
  }
  snprintf(out, n, "%s", aec);
}

/* dst[torch index] = src[aec index] (to_torch) or the reverse, for shape (aec's) and perm. */
static void permute(const float *src, float *dst, int rank, const int *shape, const int *perm,
                    int to_torch) {
  long tstride[4], total = 1;
  for (int i = 0; i < rank; i++)
    total *= shape[i];
  long s = 1;
  for (int j = rank - 1; j >= 0; j--)
    tstride[j] = s, s *= shape[perm[j]];
  int idx[4] = {0};
  for (long a = 0; a < total; a++) {
    long t = 0;
    for (int j = 0; j < rank; j++)
      t += idx[perm[j]] * tstride[j];
    if (to_torch)
      dst[t] = src[a];
    else
      dst[a] = src[t];
    for (int i = rank - 1; i >= 0 && ++idx[i] == shape[i]; i--)
      idx[i] = 0;
  }
}

/* The name and shape a parameter has in the file's layout. */
static int file_form(const aert_model *m, const aert_param *p, int torch, char *name, size_t n,
                     long *shape) {
  weight_kind k = torch ? kind_of(m, p) : PLAIN;
  if (k == AMBIGUOUS)
    return aert_error("cannot tell whether '%s' (%dx%dx%dx%d) is a conv or a conv_transpose "
                      "weight (the model was generated without its graph table: rebuild it with "
                      "this aec, or export with --layout aec)", p->name, p->shape[0], p->shape[1],
                      p->shape[2], p->shape[3]), -1;
  if (torch)
    torch_name(p->name, name, n);
  else
    snprintf(name, n, "%s", p->name);
  for (int j = 0; j < p->rank; j++)
    shape[j] = p->shape[torch_perm(k)[j]];
  return 0;
}

static int params_to_set(const aert_model *m, const float *params, int torch, aert_tensor_set *s) {
  memset(s, 0, sizeof *s);
  s->layout = strdup(torch ? "torch" : "aec");
  for (int i = 0; i < m->n_params; i++) {
    const aert_param *p = &m->params[i];
    char name[300];
    long shape[AERT_FILE_MAX_RANK];
    if (file_form(m, p, torch, name, sizeof name, shape) != 0 ||
        aert_tensor_set_add(s, name, p->rank, shape, NULL) != 0)
      return -1;
    permute(params + p->offset, s->t[s->n - 1].data, p->rank, p->shape,
            torch_perm(torch ? kind_of(m, p) : PLAIN), 1);
  }
  return 0;
}

/* ---- a file's tensors into the parameters, every difference named ------------------- */
static void shape_text(char *s, size_t n, int rank, const long *shape) {
  size_t k = (size_t)snprintf(s, n, "[");
  for (int i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(s + k, n - k, i ? ",%ld" : "%ld", shape[i]);
  if (k < n)
    snprintf(s + k, n - k, "]");
}

static void note(char *s, size_t n, int *count, const char *fmt, const char *a, const char *b,
                 const char *c) {
  size_t k = strlen(s);
  if (++*count <= 8 && k < n) {
    k += (size_t)snprintf(s + k, n - k, "%s", *count > 1 ? "; " : "");
    if (k < n)
      snprintf(s + k, n - k, fmt, a, b, c);
  } else if (*count == 9 && k < n) {
    snprintf(s + k, n - k, "; ...");
  }
}

static int is_used(const aert_model *m, int torch, const char *name) {
  char fn[300];
  long shape[AERT_FILE_MAX_RANK];
  if (torch && strlen(name) > 20 && !strcmp(name + strlen(name) - 20, ".num_batches_tracked"))
    return 1;   /* PyTorch's batch-norm counter: aec has no use for it */
  for (int i = 0; i < m->n_params; i++)
    if (file_form(m, &m->params[i], torch, fn, sizeof fn, shape) == 0 && !strcmp(fn, name))
      return 1;
  return 0;
}

static int set_to_params(const char *path, const aert_model *m, const aert_tensor_set *s,
                         int torch, float *params) {
  char diff[1500] = "", a[80], b[80];
  int count = 0;
  for (int i = 0; i < m->n_params; i++) {
    const aert_param *p = &m->params[i];
    char name[300];
    long shape[AERT_FILE_MAX_RANK];
    if (file_form(m, p, torch, name, sizeof name, shape) != 0)
      return -1;
    const aert_named *t = aert_tensor_set_find(s, name);
    shape_text(a, sizeof a, p->rank, shape);
    if (!t) {
      note(diff, sizeof diff, &count, "missing '%s' %s%s", name, a, "");
      continue;
    }
    int same = t->rank == p->rank;
    for (int j = 0; same && j < p->rank; j++)
      same = t->shape[j] == shape[j];
    if (!same) {
      shape_text(b, sizeof b, t->rank, t->shape);
      note(diff, sizeof diff, &count, "'%s' is %s, the model needs %s", name, b, a);
      continue;
    }
    permute(t->data, params + p->offset, p->rank, p->shape, torch_perm(torch ? kind_of(m, p) : PLAIN), 0);
  }
  for (int i = 0; i < s->n; i++)
    if (!is_used(m, torch, s->t[i].name)) {
      shape_text(b, sizeof b, s->t[i].rank, s->t[i].shape);
      note(diff, sizeof diff, &count, "extra '%s' %s%s", s->t[i].name, b, "");
    }
  if (count == 0)
    return 0;
  return aert_error("'%s' (%s layout) does not fit model '%s': %d difference%s: %s", path,
                    torch ? "torch" : "aec", m->name, count, count == 1 ? "" : "s", diff), -1;
}

/* ---- the commands -------------------------------------------------------------------- */
static aert_train_state step0_state(const aert_model *m, uint64_t seed) {
  return (aert_train_state){.seed = seed, .epochs = m->epochs, .best_val = 1.0f / 0.0f,
                            .has_optim = 1, .optim = m->optim, .base_lr = m->optim.lr,
                            .stop_best = 1.0f / 0.0f, .plateau_best = 1.0f / 0.0f};
}

static char *out_path(const aert_options *o, const char *name) {
  if (o->dest)
    return strdup(o->dest);
  return aert_mkdir_p(o->out) == 0 ? aert_join(o->out, name) : NULL;
}

static float *alloc_params(const aert_model *m) {
  return aert_alloc(sizeof(float) * (size_t)(m->param_floats ? m->param_floats : 1), "parameters");
}

int aert_init_command(const aert_model *m, const aert_options *o) {
  float *params = alloc_params(m);
  char *path = params ? out_path(o, "init.ckpt") : NULL;
  int rc = path ? aert_init_params(m, params, o->seed) : -1;
  aert_train_state st = step0_state(m, o->seed);
  if (rc == 0)
    rc = aert_ckpt_save(path, m, &st, params, NULL);
  if (rc == 0 && !o->quiet)
    printf("wrote %s: the initial parameters of model '%s' for seed %llu (%d tensors)\n", path,
           m->name, (unsigned long long)o->seed, m->n_params);
  free(params);
  free(path);
  return rc;
}

/* The --layout that goes with the --format: aec or torch for weights, nchw or nhwc for onnx. */
static int check_layout(const char *format, const char *layout) {
  int onnx = !strcmp(format, "onnx");
  if (!layout || (onnx ? strcmp(layout, "aec") && strcmp(layout, "torch")
                       : strcmp(layout, "nchw") && strcmp(layout, "nhwc")))
    return 0;
  return aert_error("--layout %s is for %s; --format %s takes %s", layout,
                    onnx ? "weight files (safetensors, npz)" : "onnx", format,
                    onnx ? "nchw (default) or nhwc" : "aec (default) or torch"), -1;
}

int aert_export(const aert_model *m, const aert_options *o) {
  const char *format = o->format ? o->format : "safetensors";
  int onnx = !strcmp(format, "onnx"), nchw = !o->layout || strcmp(o->layout, "nhwc");
  int torch = onnx || (o->layout && !strcmp(o->layout, "torch"));
  if (check_layout(format, o->layout) != 0)
    return -1;
  char file[300];
  snprintf(file, sizeof file, "%s%s.%s", m->name, onnx ? (nchw ? "" : ".nhwc") : torch ? ".torch" : "", format);
  char *ckpt = o->ckpt ? strdup(o->ckpt) : aert_join(o->out, "best.ckpt"), *path = NULL;
  float *params = alloc_params(m);
  aert_tensor_set s = {0};
  aert_ckpt ck;
  aert_train_state st = {0};
  int rc = ckpt && params ? aert_ckpt_load(ckpt, &ck) : -1;
  if (rc == 0) {
    rc = aert_ckpt_check_model(&ck, m);
    if (rc == 0)
      rc = aert_ckpt_restore(&ck, m, params, NULL);
    st = ck.st;
    aert_ckpt_free(&ck);
  }
  if (rc == 0 && onnx && m->data.standardize && st.norm_bands != m->in_shape[m->in_rank - 1])
    rc = (aert_error("checkpoint '%s' holds no band statistics for the standardized input of "
                     "model '%s' (a checkpoint of a training run has them)", ckpt, m->name), -1);
  if (rc == 0)
    rc = params_to_set(m, params, torch, &s);
  if (rc == 0 && !(path = out_path(o, file)))
    rc = -1;
  if (rc == 0)
    rc = onnx ? aert_onnx_write(path, m, &s, &st, nchw)
         : !strcmp(format, "npz") ? aert_npz_write(path, &s) : aert_safetensors_write(path, &s, m->name);
  if (rc == 0 && !o->quiet && onnx)
    printf("wrote %s: the inference graph of '%s' with the weights of '%s', %s input \"input\"\n", path,
           m->name, ckpt, nchw ? "NCHW" : "NHWC");
  else if (rc == 0 && !o->quiet)
    printf("wrote %s: %d tensors of '%s' in %s layout\n", path, s.n, ckpt, torch ? "PyTorch's" : "aec's");
  aert_tensor_set_free(&s);
  free(params);
  free(ckpt);
  free(path);
  return rc;
}

/* Reads a safetensors or npz file, by its first bytes. */
static int read_tensor_file(const char *path, aert_tensor_set *s) {
  unsigned char *b;
  size_t n;
  if (aert_read_file(path, &b, &n) != 0)
    return -1;
  int rc;
  if (n >= 8 && !memcmp(b, AERT_CKPT_MAGIC, 8))
    rc = (aert_error("'%s' is an aec checkpoint already: use it as it is (train --init, "
                     "eval --ckpt)", path), -1);
  else if (strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".onnx"))
    rc = (aert_error("'%s' is an ONNX model: import reads weights from safetensors and npz files "
                     "(export them from the framework that trained them)", path), -1);
  else if (n >= 4 && !memcmp(b, "PK\x03\x04", 4))
    rc = aert_npz_read(path, b, n, s);
  else
    rc = aert_safetensors_read(path, b, n, s);
  free(b);
  return rc;
}

/* The file's layout: --layout, else its metadata, else torch when its names are PyTorch's. */
static int is_torch_layout(const aert_options *o, const aert_tensor_set *s) {
  if (o->layout)
    return !strcmp(o->layout, "torch");
  if (s->layout)
    return !strcmp(s->layout, "torch");
  for (int i = 0; i < s->n; i++) {
    size_t n = strlen(s->t[i].name);
    if ((n > 7 && !strcmp(s->t[i].name + n - 7, ".weight")) || (n > 5 && !strcmp(s->t[i].name + n - 5, ".bias")))
      return 1;
  }
  return 0;
}

int aert_import(const aert_model *m, const aert_options *o) {
  aert_tensor_set s = {0};
  float *params = alloc_params(m);
  char *path = NULL;
  int rc = params ? read_tensor_file(o->input, &s) : -1, torch = 0;
  if (rc == 0) {
    torch = is_torch_layout(o, &s);
    rc = set_to_params(o->input, m, &s, torch, params);
  }
  if (rc == 0 && !(path = out_path(o, "imported.ckpt")))
    rc = -1;
  aert_train_state st = step0_state(m, 0);
  if (rc == 0)
    rc = aert_ckpt_save(path, m, &st, params, NULL);
  if (rc == 0 && !o->quiet)
    printf("wrote %s: %d tensors from '%s' (%s layout); 'train --init %s' trains from it\n", path,
           m->n_params, o->input, torch ? "torch" : "aec", path);
  aert_tensor_set_free(&s);
  free(params);
  free(path);
  return rc;
}
