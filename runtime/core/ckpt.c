/* ckpt.c - self-describing checkpoints: magic "AECCKPT1", version, CRC32 and length of the
 * payload; the payload holds the model identity, the training position and a table of named
 * float tensors (parameters and optimizer state), all little-endian. See docs/runtime.md. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "aert_internal.h"

#define HEADER_BYTES 24 /* magic 8, version 4, crc 4, payload length 8 */

static void put_u32(aert_buf *b, uint32_t v) {
  unsigned char s[4] = {v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24 & 255};
  aert_buf_put(b, s, 4);
}
static void put_u64(aert_buf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(aert_buf *b, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  put_u32(b, u);
}
static void put_str(aert_buf *b, const char *s) {
  s = s ? s : "";
  put_u32(b, (uint32_t)strlen(s));
  aert_buf_put(b, s, strlen(s));
}

static void put_tensor(aert_buf *b, const char *name, const aert_param *p, const float *data) {
  put_str(b, name);
  put_u32(b, (uint32_t)p->rank);
  for (int i = 0; i < p->rank; i++)
    put_u32(b, (uint32_t)p->shape[i]);
  for (long i = 0; i < p->size; i++)
    put_f32(b, data[i]);
}

/* The optimizer settings of a run as one row of floats (tensor train/optim). Checkpoints
 * written before the steering settings hold the first OPTIM_VALUES_V1. */
#define OPTIM_VALUES 19
#define OPTIM_VALUES_V1 12
static void optim_to_row(const aert_optim *o, float base_lr, float *v) {
  float row[OPTIM_VALUES] = {(float)o->kind, o->lr, o->momentum, o->beta1, o->beta2, o->eps,
                             o->weight_decay, (float)o->schedule, o->sched_gamma,
                             (float)o->sched_step, o->sched_min_lr, base_lr,
                             (float)o->nesterov, o->plateau_factor, (float)o->plateau_patience,
                             (float)o->warmup_steps, (float)o->warmup_epochs, o->clip_norm,
                             (float)(o->accumulate > 1 ? o->accumulate : 1)};
  memcpy(v, row, sizeof row);
}

static void optim_from_row(const float *v, aert_optim *o, float *base_lr) {
  *o = (aert_optim){.kind = (aert_opt_kind)v[0], .lr = v[1], .momentum = v[2], .beta1 = v[3],
                    .beta2 = v[4], .eps = v[5], .weight_decay = v[6],
                    .schedule = (aert_sched_kind)v[7], .sched_gamma = v[8],
                    .sched_step = (int)v[9], .sched_min_lr = v[10]};
  *base_lr = v[11];
}

/* The settings after the first twelve (zero in an older row: off). */
static void steering_from_row(const float *v, aert_optim *o) {
  o->nesterov = (int)v[12];
  o->plateau_factor = v[13];
  o->plateau_patience = (int)v[14];
  o->warmup_steps = (int)v[15];
  o->warmup_epochs = (int)v[16];
  o->clip_norm = v[17];
  o->accumulate = (int)v[18];
}

/* The epoch-end watch of early stopping and plateau (tensor train/watch). */
#define WATCH_VALUES 4
static void watch_to_row(const aert_train_state *st, float *v) {
  float row[WATCH_VALUES] = {st->stop_best, st->plateau_best, (float)st->plateau_bad, (float)st->plateau_cuts};
  memcpy(v, row, sizeof row);
}

static int get_watch(aert_ckpt *ck) {
  const aert_tensor *w = aert_ckpt_find(ck, "train/watch");
  float v[WATCH_VALUES];
  if (!w) {   /* an older checkpoint: both watches start from the best loss it kept */
    ck->st.stop_best = ck->st.plateau_best = ck->st.best_val;
    return 0;
  }
  if (w->rank != 1 || w->size != WATCH_VALUES || aert_ckpt_get(ck, "train/watch", 1, w->shape, v) != 0)
    return -1;
  ck->st.stop_best = v[0], ck->st.plateau_best = v[1];
  ck->st.plateau_bad = (int)v[2], ck->st.plateau_cuts = (int)v[3];
  return 0;
}

static const char *optim_kind_name(aert_opt_kind k) {
  return k == AERT_OPT_SGD ? "sgd" : k == AERT_OPT_ADAM ? "adam" : k == AERT_OPT_ADAMW ? "adamw" : "?";
}

static const char *sched_name(aert_sched_kind k) {
  static const char *const names[] = {"constant", "step", "cosine", "exponential", "plateau"};
  return (unsigned)k < 5 ? names[k] : "?";
}

static void add_change(char *s, size_t n, int *count, const char *what, double was, double now) {
  size_t k = strlen(s);
  if (was != now && k < n && ++*count)
    snprintf(s + k, n - k, "%s%s %g -> %g", k ? ", " : "", what, was, now);
}

/* What each value of the train/optim row is called in a message; NULL: said otherwise
 * (the kinds) or not a setting (the base learning rate). */
static const char *const row_names[OPTIM_VALUES] = {
  NULL, "lr", "momentum", "beta1", "beta2", "eps", "weight_decay", NULL, "schedule gamma", "schedule step",
  "schedule min_lr", NULL, "nesterov", "plateau factor", "plateau patience", "warmup steps", "warmup epochs",
  "clip", "accumulate"};

int aert_optim_changes(const aert_optim *was, const aert_optim *now, char *s, size_t n) {
  float a[OPTIM_VALUES], b[OPTIM_VALUES];
  int count = 0;
  optim_to_row(was, 0, a);
  optim_to_row(now, 0, b);
  s[0] = '\0';
  if (was->kind != now->kind)
    count++, snprintf(s, n, "optimizer %s -> %s", optim_kind_name(was->kind), optim_kind_name(now->kind));
  for (int i = 0; i < OPTIM_VALUES; i++) {
    if (row_names[i])
      add_change(s, n, &count, row_names[i], a[i], b[i]);
    if (i == 7 && was->schedule != now->schedule) {
      size_t k = strlen(s);
      count++;
      snprintf(s + k, n - k, "%sschedule %s -> %s", k ? ", " : "", sched_name(was->schedule),
               sched_name(now->schedule));
    }
  }
  return count;
}

static int n_states(const aert_optimizer *o) {
  return !o ? 0 : o->kind == AERT_OPT_SGD ? 1 : 2;
}

/* Mid-epoch, the sums of the epoch's losses so far (tensor train/epoch_sums), so that the
 * resumed epoch's logged means cover all its steps. Each double travels as two floats, its
 * float value and the rest, keeping about 48 bits of it. */
static void put_epoch_sums(aert_buf *b, const aert_train_state *st) {
  float v[2 * AERT_EPOCH_SUMS];
  int n = st->n_epoch_sums;
  for (int i = 0; i < n; i++) {
    v[2 * i] = (float)st->epoch_sums[i];
    v[2 * i + 1] = (float)(st->epoch_sums[i] - v[2 * i]);
  }
  aert_param row = {.rank = 1, .shape = {2 * n}, .size = 2 * n};
  put_tensor(b, "train/epoch_sums", &row, v);
}

static void put_payload(aert_buf *b, const aert_model *m, const aert_train_state *st,
                        const float *params, const aert_optimizer *o) {
  put_str(b, m->name);
  put_str(b, m->spec_hash);
  put_u64(b, st->seed);
  put_u64(b, st->step);
  put_u32(b, (uint32_t)st->epoch);
  put_u32(b, (uint32_t)st->epochs);
  put_f32(b, st->best_val);
  put_u32(b, (uint32_t)st->since_best);
  put_u32(b, o ? (uint32_t)o->kind : (uint32_t)m->optim.kind);
  put_u64(b, o ? (uint64_t)o->step : 0);
  int norm = st->norm_bands > 0 && st->norm_bands <= AERT_MAX_BANDS;
  int cw = st->n_class_weights > 0 && st->n_class_weights <= AERT_MAX_CLASSES;
  int sums = st->n_epoch_sums > 0 && st->n_epoch_sums <= AERT_EPOCH_SUMS;
  put_u32(b, (uint32_t)(m->n_params * (1 + n_states(o)) + 2 * norm + cw + 2 * st->has_optim + sums));
  for (int k = 0; k < m->n_params; k++)
    put_tensor(b, m->params[k].name, &m->params[k], params + m->params[k].offset);
  for (int s = 0; s < n_states(o); s++) {
    for (int k = 0; k < m->n_params; k++) {
      const aert_param *p = &m->params[k];
      char name[256];
      snprintf(name, sizeof name, "%s/%s", p->name, aert_optim_state_name(o->kind, s));
      put_tensor(b, name, p, (s == 0 ? o->m : o->v) + p->offset);
    }
  }
  if (norm) {
    aert_param band = {.rank = 1, .shape = {st->norm_bands}, .size = st->norm_bands};
    put_tensor(b, "data/mean", &band, st->norm_mean);
    put_tensor(b, "data/std", &band, st->norm_std);
  }
  if (cw) {
    aert_param classes = {.rank = 1, .shape = {st->n_class_weights}, .size = st->n_class_weights};
    put_tensor(b, "data/class_weights", &classes, st->class_weights);
  }
  if (st->has_optim) {
    float v[OPTIM_VALUES];
    aert_param row = {.rank = 1, .shape = {OPTIM_VALUES}, .size = OPTIM_VALUES};
    optim_to_row(&st->optim, st->base_lr, v);
    put_tensor(b, "train/optim", &row, v);
    float w[WATCH_VALUES];
    aert_param watch = {.rank = 1, .shape = {WATCH_VALUES}, .size = WATCH_VALUES};
    watch_to_row(st, w);
    put_tensor(b, "train/watch", &watch, w);
  }
  if (sums)
    put_epoch_sums(b, st);
}

static int get_epoch_sums(aert_ckpt *ck) {
  const aert_tensor *t = aert_ckpt_find(ck, "train/epoch_sums");
  float v[2 * AERT_EPOCH_SUMS];
  ck->st.n_epoch_sums = 0;
  if (!t)
    return 0;
  if (t->rank != 1 || t->size < 2 || t->size > 2 * AERT_EPOCH_SUMS || t->size % 2 ||
      aert_ckpt_get(ck, "train/epoch_sums", 1, t->shape, v) != 0)
    return -1;
  ck->st.n_epoch_sums = (int)t->size / 2;
  for (int i = 0; i < ck->st.n_epoch_sums; i++)
    ck->st.epoch_sums[i] = (double)v[2 * i] + v[2 * i + 1];
  return 0;
}

/* What a run carries besides its tensors, when the checkpoint has it: the class weights of
 * `weights = auto`, the optimizer settings, the per-band statistics of `standardize`. */
static int get_norm(aert_ckpt *ck) {
  const aert_tensor *cw = aert_ckpt_find(ck, "data/class_weights");
  if (cw && (cw->rank != 1 || cw->size < 1 || cw->size > AERT_MAX_CLASSES ||
             aert_ckpt_get(ck, "data/class_weights", 1, cw->shape, ck->st.class_weights) != 0))
    return -1;
  ck->st.n_class_weights = cw ? (int)cw->size : 0;
  const aert_tensor *opt = aert_ckpt_find(ck, "train/optim");
  if (opt) {
    float v[OPTIM_VALUES];
    if (opt->rank != 1 || (opt->size != OPTIM_VALUES && opt->size != OPTIM_VALUES_V1) ||
        aert_ckpt_get(ck, "train/optim", 1, opt->shape, v) != 0)
      return -1;
    optim_from_row(v, &ck->st.optim, &ck->st.base_lr);
    if (opt->size == OPTIM_VALUES)
      steering_from_row(v, &ck->st.optim);
    ck->st.has_optim = 1;
  }
  if (get_watch(ck) != 0 || get_epoch_sums(ck) != 0)
    return -1;
  const aert_tensor *mean = aert_ckpt_find(ck, "data/mean"), *sd = aert_ckpt_find(ck, "data/std");
  if (!mean && !sd)
    return 0;
  if (!mean || !sd || mean->rank != 1 || sd->rank != 1 || mean->size != sd->size ||
      mean->size < 1 || mean->size > AERT_MAX_BANDS)
    return -1;
  ck->st.norm_bands = (int)mean->size;
  if (aert_ckpt_get(ck, "data/mean", 1, mean->shape, ck->st.norm_mean) != 0 ||
      aert_ckpt_get(ck, "data/std", 1, sd->shape, ck->st.norm_std) != 0)
    return -1;
  for (int c = 0; c < ck->st.norm_bands; c++)
    if (!(ck->st.norm_std[c] > 0))
      return -1;
  return 0;
}

int aert_ckpt_save(const char *path, const aert_model *m, const aert_train_state *st,
                   const float *params, const aert_optimizer *o) {
  aert_buf b = {0};
  aert_buf_put(&b, AERT_CKPT_MAGIC, 8);
  put_u32(&b, AERT_CKPT_VERSION);
  put_u32(&b, 0);
  put_u64(&b, 0);
  put_payload(&b, m, st, params, o);
  if (b.failed) {
    free(b.p);
    return aert_error("out of memory writing checkpoint '%s'", path), -1;
  }
  size_t len = b.n - HEADER_BYTES;
  uint32_t crc = (uint32_t)crc32_z(0L, b.p + HEADER_BYTES, len);
  aert_buf h = {.p = b.p + 12, .cap = 12};
  put_u32(&h, crc);
  put_u64(&h, len);
  int rc = aert_write_file_atomic(path, b.p, b.n);
  free(b.p);
  return rc;
}

/* ---- reading: a cursor that refuses to run past the end --------------------------- */
typedef struct {
  const unsigned char *p, *end;
  int bad;
} cur_t;

static const unsigned char *take(cur_t *c, size_t n) {
  if (c->bad || (size_t)(c->end - c->p) < n) {
    c->bad = 1;
    return NULL;
  }
  const unsigned char *q = c->p;
  c->p += n;
  return q;
}
static uint32_t get_u32(cur_t *c) {
  const unsigned char *q = take(c, 4);
  return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24 : 0;
}
static uint64_t get_u64(cur_t *c) {
  uint64_t lo = get_u32(c);
  return lo | (uint64_t)get_u32(c) << 32;
}
static float get_f32(cur_t *c) {
  uint32_t u = get_u32(c);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static char *get_str(cur_t *c) {
  uint32_t n = get_u32(c);
  const unsigned char *q = take(c, n);
  char *s = q ? malloc(n + 1) : NULL;
  if (s) {
    memcpy(s, q, n);
    s[n] = '\0';
  } else {
    c->bad = 1;
  }
  return s;
}

static int get_tensor(cur_t *c, aert_tensor *t) {
  t->name = get_str(c);
  t->rank = (int)get_u32(c);
  if (c->bad || t->rank < 0 || t->rank > AERT_MAX_RANK)
    return -1;
  t->size = 1;
  for (int i = 0; i < t->rank; i++) {
    t->shape[i] = (int)get_u32(c);
    t->size *= t->shape[i];
  }
  t->data = take(c, 4 * (size_t)t->size);
  return c->bad ? -1 : 0;
}

static int parse_payload(aert_ckpt *ck, cur_t *c) {
  ck->model = get_str(c);
  ck->spec_hash = get_str(c);
  ck->st.seed = get_u64(c);
  ck->st.step = get_u64(c);
  ck->st.epoch = (int)get_u32(c);
  ck->st.epochs = (int)get_u32(c);
  ck->st.best_val = get_f32(c);
  ck->st.since_best = (int)get_u32(c);
  ck->opt_kind = (aert_opt_kind)get_u32(c);
  ck->opt_step = (long)get_u64(c);
  uint32_t n = get_u32(c);
  if (c->bad || n > (uint32_t)(c->end - c->p) / 8)
    return -1;
  ck->t = calloc(n ? n : 1, sizeof *ck->t);
  if (!ck->t)
    return -1;
  for (ck->n = 0; ck->n < (int)n; ck->n++)
    if (get_tensor(c, &ck->t[ck->n]) != 0) {
      free(ck->t[ck->n].name);
      return -1;
    }
  return c->p == c->end ? 0 : -1;
}

static int check_header(const char *path, const unsigned char *b, size_t len, size_t *payload) {
  if (len < HEADER_BYTES || memcmp(b, AERT_CKPT_MAGIC, 8) != 0) {
    if (len >= 8 && memcmp(b, AERT_CKPT_MAGIC, 8) == 0)
      aert_error("checkpoint '%s' is truncated: %zu bytes, shorter than its header", path, len);
    else
      aert_error("'%s' is not an aec checkpoint (bad magic)", path);
    return -1;
  }
  cur_t c = {b + 8, b + HEADER_BYTES, 0};
  uint32_t version = get_u32(&c), crc = get_u32(&c);
  uint64_t n = get_u64(&c);
  if (version != AERT_CKPT_VERSION)
    return aert_error("checkpoint '%s' has format version %u; this runtime reads version %d",
                      path, version, AERT_CKPT_VERSION), -1;
  if (n != len - HEADER_BYTES)
    return aert_error("checkpoint '%s' is %s: its header promises %llu payload bytes, the file "
                      "holds %zu", path, n > len - HEADER_BYTES ? "truncated" : "damaged",
                      (unsigned long long)n, len - HEADER_BYTES), -1;
  if ((uint32_t)crc32_z(0L, b + HEADER_BYTES, (z_size_t)n) != crc)
    return aert_error("checkpoint '%s' is corrupted: CRC32 mismatch", path), -1;
  *payload = (size_t)n;
  return 0;
}

int aert_ckpt_load(const char *path, aert_ckpt *ck) {
  size_t len, n;
  memset(ck, 0, sizeof *ck);
  if (aert_read_file(path, &ck->buf, &len) != 0)
    return -1;
  ck->path = strdup(path);
  if (!ck->path || check_header(path, ck->buf, len, &n) != 0) {
    aert_ckpt_free(ck);
    return -1;
  }
  cur_t c = {ck->buf + HEADER_BYTES, ck->buf + HEADER_BYTES + n, 0};
  if (parse_payload(ck, &c) != 0 || get_norm(ck) != 0) {
    aert_error("checkpoint '%s' is damaged: its tensor table does not parse", path);
    aert_ckpt_free(ck);
    return -1;
  }
  return 0;
}

static void shape_str(char *s, size_t n, int rank, const int *shape) {
  size_t k = (size_t)snprintf(s, n, "[");
  for (int i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(s + k, n - k, i ? ",%d" : "%d", shape[i]);
  if (k < n)
    snprintf(s + k, n - k, "]");
}

/* A parameter tensor of a checkpoint: a name without '/' (optimizer state is
 * "<param>/adam_m", run data "data/mean", "train/optim"). */
static int is_param_name(const char *name) {
  return !strchr(name, '/');
}

static int same_shape(const aert_tensor *t, const aert_param *p) {
  int same = t->rank == p->rank;
  for (int i = 0; same && i < p->rank; i++)
    same = t->shape[i] == p->shape[i];
  return same;
}

static int model_has(const aert_model *m, const char *name) {
  for (int k = 0; k < m->n_params; k++)
    if (!strcmp(m->params[k].name, name))
      return 1;
  return 0;
}

/* Appends "what name shape" to the list of differences, which stays short. */
static void add_difference(char *s, size_t n, int *count, const char *what, const char *name,
                           int rank, const int *shape) {
  char sh[64];
  size_t k = strlen(s);
  shape_str(sh, sizeof sh, rank, shape);
  if (++*count <= 6 && k < n)
    snprintf(s + k, n - k, "%s%s '%s' %s", *count > 1 ? "; " : "", what, name, sh);
  else if (*count == 7 && k < n)
    snprintf(s + k, n - k, "; ...");
}

/* A checkpoint fits a build whose parameter names and shapes are those it holds, whatever
 * else of the spec changed (comments, epochs, learning rate, the data section). */
int aert_ckpt_check_model(const aert_ckpt *ck, const aert_model *m) {
  char diff[1024] = "";
  int count = 0;
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    const aert_tensor *t = aert_ckpt_find(ck, p->name);
    if (!t) {
      add_difference(diff, sizeof diff, &count, "missing", p->name, p->rank, p->shape);
    } else if (!same_shape(t, p)) {
      char want[64];
      shape_str(want, sizeof want, p->rank, p->shape);
      add_difference(diff, sizeof diff, &count, "shape of", p->name, t->rank, t->shape);
      size_t n = strlen(diff);
      if (count <= 6)
        snprintf(diff + n, sizeof diff - n, " (the model has %s)", want);
    }
  }
  for (int i = 0; i < ck->n; i++)
    if (is_param_name(ck->t[i].name) && !model_has(m, ck->t[i].name))
      add_difference(diff, sizeof diff, &count, "extra", ck->t[i].name, ck->t[i].rank,
                     ck->t[i].shape);
  if (count == 0)
    return 0;
  aert_error("checkpoint '%s' (model '%s') does not fit model '%s': %d tensor%s differ%s: %s",
             ck->path, ck->model, m->name, count, count == 1 ? "" : "s", count == 1 ? "s" : "",
             diff);
  return -1;
}

const aert_tensor *aert_ckpt_find(const aert_ckpt *ck, const char *name) {
  for (int i = 0; i < ck->n; i++)
    if (!strcmp(ck->t[i].name, name))
      return &ck->t[i];
  return NULL;
}

int aert_ckpt_get(const aert_ckpt *ck, const char *name, int rank, const int *shape, float *dst) {
  const aert_tensor *t = aert_ckpt_find(ck, name);
  if (!t)
    return aert_error("checkpoint '%s' has no tensor '%s'", ck->path, name), -1;
  int same = t->rank == rank;
  for (int i = 0; same && i < rank; i++)
    same = t->shape[i] == shape[i];
  if (!same) {
    char a[64], b[64];
    shape_str(a, sizeof a, t->rank, t->shape);
    shape_str(b, sizeof b, rank, shape);
    return aert_error("checkpoint '%s': tensor '%s' has shape %s, expected %s", ck->path, name,
                      a, b), -1;
  }
  cur_t c = {t->data, t->data + 4 * t->size, 0};
  for (long i = 0; i < t->size; i++)
    dst[i] = get_f32(&c);
  return 0;
}

int aert_ckpt_restore(const aert_ckpt *ck, const aert_model *m, float *params, aert_optimizer *o) {
  if (o && ck->opt_kind != o->kind)
    return aert_error("checkpoint '%s' holds the state of another optimizer", ck->path), -1;
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    if (aert_ckpt_get(ck, p->name, p->rank, p->shape, params + p->offset) != 0)
      return -1;
    for (int s = 0; s < n_states(o); s++) {
      char name[256];
      snprintf(name, sizeof name, "%s/%s", p->name, aert_optim_state_name(o->kind, s));
      if (aert_ckpt_get(ck, name, p->rank, p->shape, (s == 0 ? o->m : o->v) + p->offset) != 0)
        return -1;
    }
  }
  if (o)
    o->step = ck->opt_step;
  return 0;
}

void aert_ckpt_free(aert_ckpt *ck) {
  for (int i = 0; i < ck->n; i++)
    free(ck->t[i].name);
  free(ck->t);
  free(ck->buf);
  free(ck->path);
  free(ck->model);
  free(ck->spec_hash);
  memset(ck, 0, sizeof *ck);
}
