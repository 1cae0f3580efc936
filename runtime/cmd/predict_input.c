/* predict_input.c - `predict --input PATH` and `encode --input PATH`: a trained model on new
 * data, no labels needed: a PNG file or a folder of them, an IDX file, a .npy array of raw
 * values (the data's own scale, normalised as the spec says), GeoTIFF tiles for models that
 * read them (data_geo.c). One output per input in the input's form, and for all but tiles
 * all of them stacked in one .npy of the output's shape. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "aert_internal.h"

typedef enum { FROM_PNG, FROM_IDX, FROM_NPY } input_form;

typedef struct {
  input_form form;
  long n;
  float *x;        /* n * in_size, normalised */
  char **names;    /* FROM_PNG: each file's name without .png */
  const aert_train_state *st;   /* the checkpoint's band statistics (standardize) */
} inputs_t;

static void inputs_free(inputs_t *in) {
  for (long i = 0; in->names && i < in->n; i++)
    free(in->names[i]);
  free(in->names);
  free(in->x);
  memset(in, 0, sizeof *in);
}

/* As the trainer does: x * scale + offset, or (x - mean) / std per band (standardize, the
 * checkpoint's statistics). */
static void normalise(const aert_model *m, const aert_train_state *st, float *x, long n) {
  if (m->data.standardize) {
    int C = m->in_shape[m->in_rank - 1];
    for (long i = 0; i < n; i++)
      x[i] = (x[i] - st->norm_mean[i % C]) * (1 / st->norm_std[i % C]);
    return;
  }
  float scale = m->data.scale, offset = m->data.offset;
  if (scale == 0.0f && offset == 0.0f)
    scale = 1.0f / 255.0f;
  for (long i = 0; i < n; i++)
    x[i] = x[i] * scale + offset;
}

/* ---- reading the inputs ----------------------------------------------------------------- */
static int has_png_signature(const char *path) {
  unsigned char b[8] = {0};
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(b, 1, 8, f) : 0;
  if (f)
    fclose(f);
  return n == 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
}

static int read_pngs(const aert_model *m, const char *path, int folder, inputs_t *in) {
  int h, w, c;
  aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &h, &w, &c);
  char **files = NULL;
  long n = 1;
  if (folder && aert_png_list(path, &files, &n) != 0)
    return -1;
  in->form = FROM_PNG;
  in->x = aert_alloc(sizeof(float) * n * m->in_size, path);
  in->names = aert_alloc(sizeof(char *) * n, path);
  int rc = in->x && in->names ? 0 : -1;
  for (long i = 0; rc == 0 && i < n; i++) {
    char *file = folder ? aert_join(path, files[i]) : strdup(path);
    const char *base = strrchr(file ? file : "", '/') ? strrchr(file, '/') + 1 : file;
    in->names[i] = file ? strndup(base, strlen(base) - 4) : NULL;
    in->n = i + 1;
    rc = file && in->names[i] ? aert_png_read(m, file, h, w, c, "input", in->x + i * m->in_size) : -1;
    free(file);
  }
  for (long i = 0; files && i < n; i++)
    free(files[i]);
  free(files);
  return rc;
}

static int read_idx(const aert_model *m, const char *path, inputs_t *in) {
  aert_idx idx;
  if (aert_idx_read(path, &idx) != 0)
    return -1;
  int h = idx.ndim > 1 ? idx.dims[1] : 1, w = idx.ndim > 2 ? idx.dims[2] : 1;
  int c = idx.ndim > 3 ? idx.dims[3] : 1, rc = 0;
  if (idx.item != m->in_size || (m->in_rank == 3 && (h != m->in_shape[0] || w != m->in_shape[1] ||
                                                    c != m->in_shape[2])))
    rc = (aert_error("'%s' holds %dx%dx%d images but the model's input is %dx%dx%d: resize or "
                     "tile them to that size", path, h, w, c, m->in_shape[0],
                     m->in_rank == 3 ? m->in_shape[1] : 1, m->in_rank == 3 ? m->in_shape[2] : 1), -1);
  in->form = FROM_IDX;
  in->n = idx.count;
  if (rc == 0 && !(in->x = aert_alloc(sizeof(float) * idx.count * idx.item, path)))
    rc = -1;
  for (long i = 0; rc == 0 && i < idx.count * idx.item; i++)
    in->x[i] = idx.data[i];
  free(idx.data);
  if (rc == 0)
    normalise(m, in->st, in->x, in->n * m->in_size);
  return rc;
}

/* [N, in_size], [N, ...input shape], or one example of the input's shape. */
static int read_npy(const aert_model *m, const char *path, const unsigned char *b, size_t len,
                    inputs_t *in) {
  char what[4200];
  snprintf(what, sizeof what, "'%s'", path);
  aert_named t = {0};
  if (aert_npy_parse(what, b, len, &t) != 0)
    return -1;
  long rest = 1;
  for (int i = 1; i < t.rank; i++)
    rest *= t.shape[i];
  int one = t.rank == m->in_rank && t.size == m->in_size;
  for (int i = 0; one && i < t.rank; i++)
    one = t.shape[i] == m->in_shape[i];
  if (!one && !(t.rank >= 2 && rest == m->in_size)) {
    free(t.data);
    return aert_error("'%s' has %ld values per row (shape of %d dimensions); the model's input is "
                      "%ld values (%dx%dx%d): give [N, %ld] or [N, %d, %d, %d]", path, rest, t.rank,
                      m->in_size, m->in_shape[0], m->in_shape[1], m->in_shape[2], m->in_size,
                      m->in_shape[0], m->in_shape[1], m->in_shape[2]), -1;
  }
  in->form = FROM_NPY;
  in->n = one ? 1 : t.shape[0];
  in->x = t.data;
  normalise(m, in->st, in->x, in->n * m->in_size);
  return 0;
}

static int read_inputs(const aert_model *m, const char *path, const aert_train_state *norm,
                       inputs_t *in) {
  struct stat st;
  memset(in, 0, sizeof *in);
  in->st = norm;
  if (stat(path, &st) != 0)
    return aert_error("cannot read '%s': no such file or folder", path), -1;
  if (m->data.standardize && (S_ISDIR(st.st_mode) || has_png_signature(path)))
    return aert_error("'%s': model '%s' standardizes its bands from raw values; give it GeoTIFF "
                      "tiles, an IDX file or a .npy array of raw values", path, m->name), -1;
  if (S_ISDIR(st.st_mode))
    return read_pngs(m, path, 1, in);
  unsigned char *b;
  size_t n;
  if (aert_read_file(path, &b, &n) != 0)
    return -1;
  int rc;
  if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
    rc = read_pngs(m, path, 0, in);
  else if (n >= 6 && !memcmp(b, "\x93NUMPY", 6))
    rc = read_npy(m, path, b, n, in);
  else if ((n >= 2 && b[0] == 0x1f && b[1] == 0x8b) || (n >= 4 && !b[0] && !b[1] && b[2] == 8))
    rc = read_idx(m, path, in);
  else if (n >= 4 && (!memcmp(b, "II*", 3) || !memcmp(b, "MM\0*", 4)))
    rc = (aert_error("'%s' is a TIFF: model '%s' reads PNG, IDX and .npy files (GeoTIFF tiles "
                     "are for models whose data is GeoTIFF)", path, m->name), -1);
  else
    rc = (aert_error("'%s' is not a PNG image, an IDX file or a .npy array", path), -1);
  free(b);
  if (rc != 0)
    inputs_free(in);
  return rc;
}

/* ---- running the model ------------------------------------------------------------------- */
static int run_model(aert_workspace *w, const inputs_t *in, int latent, float *out) {
  const aert_model *m = w->m;
  long width = latent ? m->latent_size : m->out_size;
  for (long start = 0; start < in->n; start += m->batch) {
    long real = in->n - start < m->batch ? in->n - start : m->batch;
    for (long b = 0; b < m->batch; b++)   /* a partial batch is padded with its last input */
      memcpy(w->x + b * m->in_size, in->x + (start + (b < real ? b : real - 1)) * m->in_size,
             sizeof(float) * m->in_size);
    if (w->y)
      memset(w->y, 0, sizeof(float) * m->batch * m->target_size);
    aert_workspace_forward(w, NULL);
    memcpy(out + start * width, latent ? aert_device_latent(&w->dev) : aert_device_output(&w->dev),
           sizeof(float) * real * width);
  }
  return 0;
}

/* ---- writing: the shape of one output, and its form per input ---------------------------- */
typedef enum { AS_VECTOR, AS_IMAGE, AS_CLASS_MAP } output_kind;

static output_kind output_shape(const aert_model *m, int latent, int *rank, long *shape) {
  if (latent) {
    *rank = 1, shape[0] = m->latent_size;
    return AS_VECTOR;
  }
  if (m->target_kind == AERT_TARGET_CLASSES && m->target_rank >= 2 &&
      m->out_size == m->target_size * m->n_classes) {
    *rank = 3, shape[0] = m->target_shape[0], shape[1] = m->target_shape[1], shape[2] = m->n_classes;
    return AS_CLASS_MAP;
  }
  int same = m->out_size == m->in_size, h, w, c;
  if (m->target_kind != AERT_TARGET_CLASSES && (same || m->out_size == m->target_size)) {
    if (same)   /* a flat input of s*s values is an s x s image */
      aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &h, &w, &c);
    else
      aert_image_hwc(m->target_rank, m->target_shape, m->target_size, &h, &w, &c);
    if (h > 1 && w > 1) {
      *rank = 3, shape[0] = h, shape[1] = w, shape[2] = c;
      return AS_IMAGE;
    }
  }
  *rank = 1, shape[0] = latent ? m->latent_size : m->out_size;
  return AS_VECTOR;
}

/* Image values back on the 0..255 scale of the data (the inverse of the normalisation). */
static void image_bytes(const aert_model *m, const float *y, long n, int c, unsigned char *out) {
  float scale = m->data.scale, offset = m->data.offset;
  if (scale == 0.0f && offset == 0.0f)
    scale = 1.0f / 255.0f;
  int ch = c >= 3 ? 3 : 1;
  for (long i = 0; i < n; i++)
    for (int k = 0; k < ch; k++) {
      float v = (y[i * c + k] - offset) / scale;
      out[i * ch + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
    }
}

/* Per pixel, the label value of the class with the highest score. */
static void class_map(const aert_model *m, const float *y, long n, unsigned char *out) {
  for (long i = 0; i < n; i++) {
    int best = 0;
    for (int c = 1; c < m->n_classes; c++)
      if (y[i * m->n_classes + c] > y[i * m->n_classes + best])
        best = c;
    out[i] = (unsigned char)m->class_ids[best];
  }
}

static int write_one(const aert_model *m, const char *dir, const char *name, output_kind kind,
                     int rank, const long *shape, const float *y, unsigned char *bytes) {
  char file[4400];
  if (kind == AS_VECTOR) {
    snprintf(file, sizeof file, "%s/%s.npy", dir, name);
    return aert_npy_write_shaped(file, y, rank, shape);
  }
  snprintf(file, sizeof file, "%s/%s.png", dir, name);
  long px = shape[0] * shape[1];
  if (kind == AS_CLASS_MAP)
    class_map(m, y, px, bytes);
  else
    image_bytes(m, y, px, (int)shape[2], bytes);
  return aert_png_write(file, bytes, (int)shape[1], (int)shape[0],
                        kind == AS_IMAGE && shape[2] >= 3 ? 3 : 1);
}

/* IDX of unsigned bytes: the images (or class maps) of an IDX input, in its own form. */
static int write_idx(const aert_model *m, const char *path, output_kind kind, long n,
                     const long *shape, const float *y, long width) {
  int c = kind == AS_IMAGE ? (int)shape[2] : 1, ch = c >= 3 ? 3 : 1, nd = ch > 1 ? 4 : 3;
  long px = shape[0] * shape[1];
  unsigned char head[20] = {0, 0, 8, (unsigned char)nd};
  long dims[4] = {n, shape[0], shape[1], ch};
  for (int d = 0; d < nd; d++)
    for (int k = 0; k < 4; k++)
      head[4 + 4 * d + k] = (unsigned char)(dims[d] >> (24 - 8 * k));
  unsigned char *bytes = aert_alloc((size_t)(n * px * ch), path);
  if (!bytes)
    return -1;
  for (long i = 0; i < n; i++) {
    if (kind == AS_CLASS_MAP)
      class_map(m, y + i * width, px, bytes + i * px);
    else
      image_bytes(m, y + i * width, px, c, bytes + i * px * ch);
  }
  aert_atomic a;
  int rc = aert_atomic_open(&a, path);
  if (rc == 0 && (aert_write(a.f, head, (size_t)(4 + 4 * nd), a.tmp) ||
                  aert_write(a.f, bytes, (size_t)(n * px * ch), a.tmp)))
    aert_atomic_abort(&a), rc = -1;
  else if (rc == 0)
    rc = aert_atomic_commit(&a);
  free(bytes);
  return rc;
}

static int write_outputs(const aert_model *m, const aert_options *o, const inputs_t *in,
                         int latent, const float *y) {
  int rank;
  long shape[4], stacked[5] = {in->n};
  output_kind kind = output_shape(m, latent, &rank, shape);
  long width = latent ? m->latent_size : m->out_size;
  memcpy(stacked + 1, shape, sizeof(long) * rank);
  char *npy = aert_join(o->out, latent ? "latent.npy" : "predictions.npy");
  int rc = npy ? aert_npy_write_shaped(npy, y, rank + 1, stacked) : -1, written = 0;
  char *dir = NULL;
  if (rc == 0 && in->form == FROM_PNG) {
    dir = aert_join(o->out, latent ? "latents" : "predictions");
    unsigned char *bytes = aert_alloc((size_t)(shape[0] * (rank > 1 ? shape[1] * 3 : 1)), "image");
    rc = dir && bytes ? aert_mkdir_p(dir) : -1;
    for (long i = 0; rc == 0 && i < in->n; i++, written++)
      rc = write_one(m, dir, in->names[i], kind, rank, shape, y + i * width, bytes);
    free(bytes);
  } else if (rc == 0 && in->form == FROM_IDX && kind != AS_VECTOR) {
    dir = aert_join(o->out, "predictions-idx-ubyte");
    rc = dir ? write_idx(m, dir, kind, in->n, shape, y, width) : -1;
  }
  if (rc == 0 && !o->quiet) {
    printf("wrote %s (%ld x %ld)", npy, in->n, width);
    if (written)
      printf(" and %d %s in %s", written, kind == AS_VECTOR ? ".npy files" : "PNG images", dir);
    else if (dir)
      printf(" and %s", dir);
    printf("\n");
  }
  free(npy);
  free(dir);
  return rc;
}

/* The checkpoint's parameters (and class weights) into a workspace, its run data into st. */
static int load_model(aert_workspace *w, const aert_model *m, const aert_options *o,
                      aert_train_state *st) {
  char *path = o->ckpt ? strdup(o->ckpt) : aert_join(o->out, "best.ckpt");
  aert_ckpt ck;
  int rc = path && aert_workspace_init(w, m, 0) == 0 ? aert_ckpt_load(path, &ck) : -1;
  if (rc == 0) {
    rc = aert_ckpt_check_model(&ck, m);
    if (rc == 0)
      rc = aert_ckpt_restore(&ck, m, w->dev.params, NULL);
    if (rc == 0)
      aert_device_upload(&w->dev);
    if (rc == 0 && m->set_class_weights && ck.st.n_class_weights == m->n_classes)
      m->set_class_weights(ck.st.class_weights);
    *st = ck.st;
    if (rc == 0 && m->data.standardize && st->norm_bands != m->in_shape[m->in_rank - 1])
      rc = (aert_error("checkpoint '%s' holds no band statistics for the standardized input of "
                       "model '%s' (a checkpoint of a training run has them)", path, m->name), -1);
    aert_ckpt_free(&ck);
  }
  free(path);
  return rc;
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && !strcasecmp(s + n - k, suffix);
}

static int folder_has_tiffs(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int found = 0;
  while (d && !found && (e = readdir(d)))
    found = e->d_name[0] != '.' && (has_suffix(e->d_name, ".tif") || has_suffix(e->d_name, ".tiff"));
  if (d)
    closedir(d);
  return found;
}

/* GeoTIFF tiles for a model that reads them: a folder of tiles, one file <tile>_<layer>.tif
 * of a tile whose other layers lie beside it, or one file of every input band (a scene).
 * Returns 1 when path is not GeoTIFF. */
static int predict_tiles(const aert_model *m, const aert_options *o, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return 1;
  if (S_ISDIR(st.st_mode))
    return folder_has_tiffs(path) ? aert_predict_tiles_input(m, o, path, NULL, NULL) : 1;
  if (!has_suffix(path, ".tif") && !has_suffix(path, ".tiff"))
    return 1;
  char layer[160], suffix[170];
  aert_tiles_first_layer(m, layer, sizeof layer);
  snprintf(suffix, sizeof suffix, "_%s.tif", layer);
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
  if (!has_suffix(base, suffix)) {   /* one file of every band: a scene */
    int rc = dir ? aert_predict_tiles_input(m, o, dir, NULL, path) : -1;
    free(dir);
    return rc;
  }
  char *tile = strndup(base, strlen(base) - strlen(suffix));
  int rc = dir && tile ? aert_predict_tiles_input(m, o, dir, tile, NULL) : -1;
  free(dir);
  free(tile);
  return rc;
}

int aert_predict_input(const aert_model *m, const aert_options *o, int latent) {
  if (!latent && (m->data.kind == AERT_DATA_GEOTIFF || m->data.kind == AERT_DATA_SYNTHETIC_LANDCOVER)) {
    int rc = predict_tiles(m, o, o->input);
    if (rc != 1)
      return rc;
  }
  aert_workspace w = {0};
  inputs_t in = {0};
  float *y = NULL;
  aert_train_state st = {0};
  int rc = load_model(&w, m, o, &st);
  if (rc == 0)
    rc = read_inputs(m, o->input, &st, &in);
  long width = latent ? m->latent_size : m->out_size;
  if (rc == 0 && !(y = aert_alloc(sizeof(float) * in.n * width, "outputs")))
    rc = -1;
  if (rc == 0)
    rc = run_model(&w, &in, latent, y);
  if (rc == 0)
    rc = aert_mkdir_p(o->out);
  if (rc == 0)
    rc = write_outputs(m, o, &in, latent, y);
  free(y);
  inputs_free(&in);
  aert_workspace_free(&w);
  return rc;
}
