/* predict_tiles.c - the `predict` (and class-map `eval`) command over whole GeoTIFF tiles
 * and scenes: overlapping windows blended into class probabilities, written row by row as
 * cloud-optimised GeoTIFF class maps (and probabilities), with a picture per tile. The
 * tiles themselves are read by data_geo.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"
#include "dist.h"
#include "tiles.h"

/* ---- predict over whole tiles --------------------------------------------------------- */
/* A tile is predicted in rows of windows; only p rows of the tile are held at once (scores,
 * weights, no-data flags), and finished rows go straight to the output files. */
typedef struct {
  aert_session *s;
  aert_tiles *t;
  int k, W, H, p, nc, ov;
  int probs;                   /* 0, or a probability file of AERT_PIX_* + 1 */
  float *acc, *wsum;           /* p rows of the tile from row base: class scores, weights */
  unsigned char *nodata;       /* p rows from base: 1 where a layer says no data */
  int base;
  unsigned char *out;          /* p rows of the class map (label values) */
  unsigned char *prob;         /* p rows of probabilities (bytes or floats) */
  float *truth;                /* p rows of labels */
  signed char *preview;        /* every f-th pixel's class index (-1 no data), pw x ph */
  int f, pw, ph;
  aert_cog *map, *prob_cog;
  long correct, counted;
  int quiet;
} tile_pred;

/* A window pixel's weight rises over the overlap from its nearest window edge, so windows
 * blend into each other instead of meeting at a seam. */
static float ramp(int d, int ov) {
  return d >= ov ? 1.0f : (d + 1.0f) / (ov + 1.0f);
}

/* Window positions along one axis: every stride, the last flush with the edge; NULL when
 * out of memory. */
static int *positions(int size, int p, int stride, int *n) {
  int cap = (size - p) / stride + 2;
  int *pos = aert_alloc(sizeof(int) * cap, "window positions");
  *n = 0;
  for (int v = 0; pos && *n < cap; v += stride) {
    pos[(*n)++] = v < size - p ? v : size - p;
    if (v >= size - p)
      break;
  }
  return pos;
}

/* Runs the model over windows (x positions xs[0..n-1], row y) and adds their softmax
 * probabilities, weighted, into the accumulator. */
static int run_windows(tile_pred *tp, const int *xs, int n, int y) {
  aert_session *s = tp->s;
  const aert_model *m = s->w.m;
  geo_reader *r = &tp->t->reader[0];
  int p = tp->p, nc = tp->nc;
  for (int b = 0; b < m->batch; b++) {
    float *x = s->w.x + (long)b * m->in_size;
    if (b >= n) {
      memcpy(x, s->w.x, sizeof(float) * m->in_size);
      continue;
    }
    if (aert_geo_read_patch(tp->t, r, tp->k, xs[b], y, x, NULL) != 0)
      return -1;
    for (int i = 0; i < p * p; i++)
      tp->nodata[(long)(y - tp->base + i / p) * tp->W + xs[b] + i % p] |= r->nodata[i];
    aert_geo_normalise(tp->t, x);
  }
  for (int b = 0; b < m->batch; b++)   /* the target is not used: no loss is read */
    memset(s->w.y + (long)b * m->target_size, 0, sizeof(float) * m->target_size);
  aert_workspace_forward(&s->w, NULL);
  const float *out = aert_device_output(&s->w.dev);
  for (int b = 0; b < n; b++)
    for (int i = 0; i < p * p; i++) {
      const float *z = out + ((long)b * p * p + i) * nc;
      int wy = i / p, wx = i % p;
      int d = wy < wx ? wy : wx;
      d = d < p - 1 - wy ? d : p - 1 - wy;
      d = d < p - 1 - wx ? d : p - 1 - wx;
      float wt = ramp(d, tp->ov), mx = z[0], sum = 0;
      for (int c = 1; c < nc; c++)
        mx = z[c] > mx ? z[c] : mx;
      for (int c = 0; c < nc; c++)
        sum += expf(z[c] - mx);
      long o = ((long)(y - tp->base + wy) * tp->W + xs[b] + wx);
      for (int c = 0; c < nc; c++)
        tp->acc[o * nc + c] += wt * expf(z[c] - mx) / sum;
      tp->wsum[o] += wt;
    }
  return 0;
}

/* Pixel i of the rows being emitted: its blended probabilities into the probability rows
 * (254 = 1 as bytes, 255 no data; NaN no data as floats). */
static void emit_probabilities(tile_pred *tp, long i, int nodata) {
  float wsum = tp->wsum[i] > 0 ? tp->wsum[i] : 1;
  for (int c = 0; c < tp->nc; c++) {
    float v = tp->acc[i * tp->nc + c] / wsum;
    if (tp->probs == AERT_PIX_F32 + 1)
      ((float *)tp->prob)[i * tp->nc + c] = nodata ? NAN : v;
    else
      tp->prob[i * tp->nc + c] = (unsigned char)(nodata ? 255 : (int)(v * 254 + 0.5f));
  }
}

/* Rows base..end-1 are final: their classes go to the map, and beside the tile's labels
 * into the confusion matrix; the accumulator moves down to row end. */
static int emit_rows(tile_pred *tp, int end) {
  const aert_model *m = tp->s->w.m;
  aert_metrics *mt = &tp->s->mt;
  int rows = end - tp->base, W = tp->W, nc = tp->nc;
  if (rows <= 0)
    return 0;
  geo_reader *r = &tp->t->reader[0];
  if (tp->t->unlabeled)
    for (long i = 0; i < (long)rows * W; i++)
      tp->truth[i] = -1;
  else if (aert_raster_read(&r->r[tp->t->n_layers], 0, tp->base, W, rows, 0, 1, tp->truth, 1, 0) != 0)
    return -1;
  for (long i = 0; i < (long)rows * W; i++) {
    int best = 0, y = tp->base + (int)(i / W), x = (int)(i % W), nodata = tp->nodata[i];
    for (int c = 1; c < nc; c++)
      if (tp->acc[i * nc + c] > tp->acc[i * nc + best])
        best = c;
    int truth = tp->t->unlabeled ? -1 : (int)aert_geo_label_class(m, &r->r[tp->t->n_layers], tp->truth[i]);
    tp->out[i] = (unsigned char)(nodata ? aert_nodata_label(m) : m->class_ids[best]);
    if (tp->probs)
      emit_probabilities(tp, i, nodata);
    if (y % tp->f == 0 && y / tp->f < tp->ph && x % tp->f == 0 && x / tp->f < tp->pw)
      tp->preview[(long)(y / tp->f) * tp->pw + x / tp->f] = (signed char)(nodata ? -1 : best);
    if (truth >= 0 && !nodata) {
      mt->confusion[truth * nc + best]++;
      mt->correct += truth == best;
      mt->counted++;
      tp->correct += truth == best;
      tp->counted++;
    }
  }
  if (aert_cog_rows(tp->map, tp->out, rows) != 0 ||
      (tp->prob_cog && aert_cog_rows(tp->prob_cog, tp->prob, rows) != 0))
    return -1;
  long keep = (long)(tp->p - rows) * W;
  memmove(tp->acc, tp->acc + (long)rows * W * nc, sizeof(float) * keep * nc);
  memset(tp->acc + keep * nc, 0, sizeof(float) * ((long)rows * W * nc));
  memmove(tp->wsum, tp->wsum + (long)rows * W, sizeof(float) * keep);
  memset(tp->wsum + keep, 0, sizeof(float) * ((long)rows * W));
  memmove(tp->nodata, tp->nodata + (long)rows * W, (size_t)keep);
  memset(tp->nodata + keep, 0, (size_t)rows * W);
  tp->base = end;
  return 0;
}

/* The picture: the first layer's first three bands (bytes as they are, other types
 * stretched by their largest sampled value), the labels and the prediction, every f-th
 * pixel, read in blocks of rows so that each strip or tile is decoded about once. */
static int tile_png(tile_pred *tp, const char *path) {
  enum { BLOCK = 64 };
  const aert_model *m = tp->s->w.m;
  geo_reader *r = &tp->t->reader[0];
  int W = tp->W, f = tp->f, pw = tp->pw, ph = tp->ph;
  int nb = r->r[0].bands >= 3 ? 3 : 0;
  float *img = nb ? aert_alloc(sizeof(float) * pw * ph * 3, path) : NULL;
  unsigned char *rgb = nb ? aert_alloc((size_t)pw * ph * 3, path) : NULL;
  signed char *truth = aert_alloc((size_t)pw * ph, path);
  float *rows = aert_alloc(sizeof(float) * W * BLOCK * 4, path), hi = 0;
  int rc = truth && rows && (!nb || (img && rgb)) ? 0 : -1;
  for (int y0 = 0; rc == 0 && y0 < ph * f; y0 += BLOCK) {
    int n = ph * f - y0 < BLOCK ? ph * f - y0 : BLOCK;
    for (long i = 0; tp->t->unlabeled && i < (long)W * n; i++)
      rows[i * 4 + 3] = -1;
    if (!tp->t->unlabeled)
      rc = aert_raster_read(&r->r[tp->t->n_layers], 0, y0, W, n, 0, 1, rows, 4, 3);
    if (rc == 0 && nb)
      rc = aert_raster_read(&r->r[0], 0, y0, W, n, 0, 3, rows, 4, 0);
    for (int y = y0 + (f - y0 % f) % f; rc == 0 && y < y0 + n; y += f)
      for (int x = 0; x < pw; x++) {
        const float *v = rows + ((long)(y - y0) * W + (long)x * f) * 4;
        long o = (long)(y / f) * pw + x;
        for (int c = 0; c < nb; c++) {
          img[o * 3 + c] = v[c];
          hi = v[c] > hi ? v[c] : hi;
        }
        truth[o] = (signed char)(tp->t->unlabeled ? -1 : aert_geo_label_class(m, &r->r[tp->t->n_layers], v[3]));
      }
  }
  if (r->r[0].type == AERT_PIX_U8 || hi <= 0)
    hi = 255;
  for (long i = 0; rc == 0 && i < (long)pw * ph * nb; i++) {
    float u = img[i] / hi;
    rgb[i] = (unsigned char)(u < 0 ? 0 : u > 1 ? 255 : u * 255 + 0.5f);
  }
  if (rc == 0)
    rc = aert_png_landcover(path, rgb, tp->t->unlabeled ? NULL : truth, tp->preview, pw, ph,
                            m->n_classes, m->class_names);
  free(img);
  free(rgb);
  free(truth);
  free(rows);
  return rc;
}

/* ---- the files a prediction writes: a paletted class map, probabilities ------------------ */
/* Opens the class map (and the probabilities) of tile k in dir. */
static int open_outputs(tile_pred *tp, const char *dir, const aert_map_style *st, char *prob_md) {
  const aert_model *m = tp->s->w.m;
  const aert_georef *geo = &tp->t->reader[0].r[0].geo;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s_pred.tif", dir, tp->t->tile[tp->k]);
  aert_cog_info map = {.width = tp->W, .height = tp->H, .bands = 1, .type = AERT_PIX_U8,
                       .geo = geo, .nodata = st->nodata, .nodata_value = aert_nodata_label(m),
                       .colormap = st->colormap, .metadata = st->metadata, .categorical = 1};
  if (!(tp->map = aert_cog_open(path, &map)))
    return -1;
  if (!tp->probs)
    return 0;
  snprintf(path, sizeof path, "%s/%s_prob.tif", dir, tp->t->tile[tp->k]);
  aert_band_metadata(m, tp->probs, prob_md, 8192);
  aert_cog_info prob = {.width = tp->W, .height = tp->H, .bands = tp->nc, .type = tp->probs - 1,
                        .geo = geo, .nodata = tp->probs == AERT_PIX_U8 + 1 ? "255" : "nan",
                        .metadata = prob_md};
  return (tp->prob_cog = aert_cog_open(path, &prob)) ? 0 : -1;
}

static int predict_rows(tile_pred *tp, const int *xs, int nx, const int *ys, int ny) {
  int B = tp->s->w.m->batch, rc = 0;
  tp->base = 0;
  for (int j = 0; rc == 0 && j < ny; j++) {
    rc = emit_rows(tp, ys[j]);
    for (int i = 0; rc == 0 && i < nx; i += B)
      rc = run_windows(tp, xs + i, nx - i < B ? nx - i : B, ys[j]);
  }
  return rc == 0 ? emit_rows(tp, tp->H) : -1;
}

static int predict_tile(tile_pred *tp, const char *dir) {
  aert_tiles *t = tp->t;
  int p = tp->p, stride = p - tp->ov, nx, ny;
  int *xs = positions(tp->W, p, stride, &nx), *ys = positions(tp->H, p, stride, &ny);
  int rc = xs && ys ? aert_geo_reader_open(t, &t->reader[0], tp->k) : -1;
  size_t bytes = tp->probs == AERT_PIX_F32 + 1 ? sizeof(float) : 1;
  aert_map_style st;
  char prob_md[8192];
  aert_map_style_init(tp->s->w.m, &st);
  tp->f = (tp->W > tp->H ? tp->W : tp->H) / 512 + 1, tp->pw = tp->W / tp->f, tp->ph = tp->H / tp->f;
  tp->acc = aert_alloc(sizeof(float) * p * tp->W * tp->nc, "prediction");
  tp->wsum = aert_alloc(sizeof(float) * p * tp->W, "prediction");
  tp->truth = aert_alloc(sizeof(float) * p * tp->W, "prediction");
  tp->nodata = aert_alloc((size_t)p * tp->W, "prediction");
  tp->out = aert_alloc((size_t)p * tp->W, "prediction");
  tp->prob = tp->probs ? aert_alloc(bytes * p * tp->W * tp->nc, "probabilities") : NULL;
  tp->preview = aert_alloc((size_t)tp->pw * tp->ph, "prediction");
  if (!tp->acc || !tp->wsum || !tp->truth || !tp->nodata || !tp->out || !tp->preview ||
      (tp->probs && !tp->prob))
    rc = -1;
  if (rc == 0)
    rc = open_outputs(tp, dir, &st, prob_md);
  if (rc == 0)
    rc = predict_rows(tp, xs, nx, ys, ny);
  if (rc == 0) {
    rc = aert_cog_close(tp->map);
    if (tp->prob_cog && aert_cog_close(tp->prob_cog) != 0)
      rc = -1;
  } else {
    aert_cog_abort(tp->map);
    aert_cog_abort(tp->prob_cog);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/%s_pred.tif", dir, t->tile[tp->k]);
  if (rc == 0)
    rc = aert_write_category_names(tp->s->w.m, path);
  snprintf(path, sizeof path, "%s/%s_pred.png", dir, t->tile[tp->k]);
  if (rc == 0)
    rc = tile_png(tp, path);
  if (rc == 0 && t->unlabeled && !tp->quiet)
    printf("%-24s %dx%d, %d windows -> %s/%s_pred.tif, .png\n", t->tile[tp->k], tp->W, tp->H,
           nx * ny, dir, t->tile[tp->k]);
  else if (rc == 0 && !t->unlabeled)
    printf("%-24s %dx%d, %d windows: pixel accuracy %.4f -> %s/%s_pred.tif, .png\n", t->tile[tp->k],
           tp->W, tp->H, nx * ny, tp->counted ? (double)tp->correct / tp->counted : NAN, dir, t->tile[tp->k]);
  free(xs);
  free(ys);
  free(tp->acc);
  free(tp->wsum);
  free(tp->truth);
  free(tp->nodata);
  free(tp->out);
  free(tp->prob);
  free(tp->preview);
  return rc;
}

/* Every tile of t in overlapping windows of the patch size (--overlap, a quarter of it by
 * default) into OUT/predictions; *ov gets the overlap. */
static int predict_all(aert_session *s, aert_tiles *t, const aert_options *o, int *ov) {
  const aert_model *m = s->w.m;
  int p = m->data.patch;
  *ov = o->overlap >= 0 ? o->overlap : p / 4;
  if (*ov >= p)
    return aert_error("--overlap %d must be smaller than the %d-pixel patch", *ov, p), -1;
  char *dir = aert_join(o->out, "predictions");
  int rc = dir && aert_mkdir_p(dir) == 0 ? 0 : -1;
  for (int k = 0; rc == 0 && k < t->n; k++) {
    tile_pred tp = {.s = s, .t = t, .k = k, .W = t->w[k], .H = t->h[k], .p = p, .nc = m->n_classes, .ov = *ov,
                    .quiet = o->quiet, .probs = o->probabilities};
    rc = predict_tile(&tp, dir);
  }
  free(dir);
  return rc;
}

/* `predict` for land cover: every test tile in overlapping windows, blended, written as a
 * class-map GeoTIFF with the input's georeferencing and a PNG; accuracy and IoU over all. */
int aert_predict_tiles(const aert_model *m, const aert_options *o) {
  aert_session s;
  int ov = 0, rc = aert_session_open(&s, m, o);
  if (rc == 0)
    rc = predict_all(&s, s.test.tiles, o, &ov);
  if (rc == 0) {
    printf("whole tiles    %d, windows of %d with %d pixels overlap (checkpoint %s)\n", s.test.tiles->n, m->data.patch,
           ov, s.ckpt);
    printf("pixel accuracy %.4f\n", aert_accuracy(&s.mt));
    for (int c = 0; c < m->n_classes; c++)
      printf("  IoU %-10s %.4f\n", m->class_names[c] ? m->class_names[c] : "?", aert_iou(&s.mt, c));
    printf("mean IoU       %.4f\n", aert_mean_iou(&s.mt));
    aert_print_confusion(&s.mt, m->class_names);
  }
  aert_session_close(&s);
  return rc;
}

/* `predict --input` of GeoTIFF tiles without labels: a folder of tiles (<tile>_<layer>.tif,
 * named by the first layer's files) or one file of a tile; class maps as above. */
int aert_predict_tiles_input(const aert_model *m, const aert_options *o, const char *dir,
                             const char *only, const char *scene) {
  aert_session s;
  aert_train_state st;
  int ov = 0, rc = aert_session_model(&s, m, o, &st);
  aert_tiles *t = rc == 0 ? aert_geo_tiles_open(m, dir, 1, only, scene) : NULL;
  if (rc == 0 && !t)
    rc = -1;
  if (rc == 0) {
    t->standardize = m->data.standardize;
    rc = aert_tiles_set_norm(t, &st, s.ckpt);
  }
  if (rc == 0)
    rc = predict_all(&s, t, o, &ov);
  if (rc == 0 && !o->quiet)
    printf("predicted %d tile(s) of '%s' in windows of %d with %d pixels overlap (checkpoint %s)\n",
           t->n, dir, m->data.patch, ov, s.ckpt);
  aert_tiles_free(t);
  aert_session_close(&s);
  return rc;
}

