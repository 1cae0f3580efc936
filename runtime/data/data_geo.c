/* data_geo.c - the GeoTIFF source: land-cover patches streamed from tiles, never all in
 * memory: a split folder holds tiles as files <tile>_<layer>.tif, stacked band by band into
 * the input in the spec's order, with a label layer remapped to class indices. Training
 * draws patches_per_tile random patches per tile anew each epoch; validation and test cover
 * their tiles with a fixed grid. Patches of a batch are read by several threads at once,
 * each with its own open files (reader_of: which patches each reads). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"
#include "dist.h"

#include "tiles.h"

static struct { int threads, skip_bad, shared; } config = {2, 0, 0};

void aert_tiles_configure(int threads, int skip_bad) {
  if (threads > 0)
    config.threads = threads;
  config.skip_bad = skip_bad;
}

void aert_tiles_share(int on) { config.shared = on; }

static int parse_layer(const char *spec, geo_layer *l) {
  const char *colon = strchr(spec, ':');
  size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
  memset(l, 0, sizeof *l);
  if (n == 0 || n >= sizeof l->name)
    return aert_error("layer '%s': expected a name such as \"naip-new\" or \"landsat-leaf-on:1-8\"", spec), -1;
  memcpy(l->name, spec, n);
  if (!colon)
    return 0;
  int a, b, used = 0;
  if (sscanf(colon + 1, "%d-%d%n", &a, &b, &used) == 2 && !colon[1 + used] && a >= 1 && b >= a) {
    l->band0 = a - 1, l->nbands = b - a + 1;
    return 0;
  }
  if (sscanf(colon + 1, "%d%n", &a, &used) == 1 && !colon[1 + used] && a >= 1) {
    l->band0 = a - 1, l->nbands = 1;
    return 0;
  }
  return aert_error("layer '%s': the bands after ':' must be N or N-M (1-based, N <= M)", spec), -1;
}

static char *tile_path(const aert_tiles *t, int tile, const char *layer) {
  if (t->scene)
    return strdup(t->scene);
  size_t n = strlen(t->dir) + strlen(t->tile[tile]) + strlen(layer) + 8;
  char *p = malloc(n);
  if (p && t->scenes)
    snprintf(p, n, "%s/%s.tif", t->dir, t->tile[tile]);
  else if (p)
    snprintf(p, n, "%s/%s_%s.tif", t->dir, t->tile[tile], layer);
  return p;
}

static const char *label_layer(const aert_model *m) {
  return m->data.label_layer ? m->data.label_layer : "lc";
}

/* ---- finding and checking the tiles -------------------------------------------------- */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Tile names: the files <name><suffix> in dir (suffix "_lc.tif" for tiles, ".tif" for a
 * folder of scenes), sorted; none is no error here. */
static int list_tiles(aert_tiles *t, const char *suffix) {
  DIR *d = opendir(t->dir);
  if (!d)
    return aert_error("cannot read the tile folder '%s': %s", t->dir, strerror(errno)), -1;
  size_t sl = strlen(suffix);
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n <= sl || strcmp(e->d_name + n - sl, suffix))
      continue;
    if (t->n == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = realloc(t->tile, sizeof(char *) * cap);
      if (!grown)
        return closedir(d), aert_error("out of memory listing '%s'", t->dir), -1;
      t->tile = grown;
    }
    t->tile[t->n] = strndup(e->d_name, n - sl);
    if (!t->tile[t->n++])
      return closedir(d), aert_error("out of memory listing '%s'", t->dir), -1;
  }
  closedir(d);
  qsort(t->tile, (size_t)t->n, sizeof(char *), cmp_str);
  return 0;
}

/* The tiles named by <tile>_<labels>.tif; for unlabelled data without such files, every
 * .tif of the folder as a scene of all the input's bands. */
static int find_tiles(aert_tiles *t, const char *labels) {
  char suffix[160];
  snprintf(suffix, sizeof suffix, "_%s.tif", labels);
  int rc = list_tiles(t, suffix);
  if (rc == 0 && t->n == 0 && t->unlabeled) {
    t->scenes = 1, t->n_layers = 1;
    memset(&t->layer[0], 0, sizeof t->layer[0]);
    rc = list_tiles(t, ".tif");
  }
  if (rc == 0 && t->n == 0)
    return aert_error("no tiles in '%s': expected files named <tile>_%s.tif (and <tile>_<layer>.tif "
                      "for each input layer)%s", t->dir, labels,
                      t->unlabeled ? ", or .tif files of every input band" : ""), -1;
  return rc;
}

/* Keeps the one tile named only. */
static int keep_only(aert_tiles *t, const char *only) {
  int kept = 0;
  for (int k = 0; k < t->n; k++) {
    if (!kept && !strcmp(t->tile[k], only))
      t->tile[kept++] = t->tile[k];
    else
      free(t->tile[k]);
  }
  t->n = kept;
  if (!kept)
    return aert_error("no tile '%s' in '%s'", only, t->dir), -1;
  return 0;
}

/* Opens every file of one tile and checks sizes, pixel grids (CRS, origin, pixel size) and
 * bands; returns the bands stacked. */
static int check_tile(aert_tiles *t, int k, int *bands) {
  const aert_model *m = t->m;
  aert_raster lab, r;
  char *path = tile_path(t, k, t->unlabeled ? t->layer[0].name : label_layer(m));
  int rc = path ? aert_raster_open(&lab, path) : -1;
  free(path);
  if (rc != 0)
    return -1;
  t->w[k] = lab.width, t->h[k] = lab.height;
  if (t->unlabeled)   /* the first layer sets the grid */
    ;
  else if (lab.bands != 1 || lab.type == AERT_PIX_F32 || lab.type == AERT_PIX_F64)
    rc = (aert_error("'%s': a label layer needs one band of whole numbers, not %d band(s) of %s",
                    lab.path, lab.bands, lab.type >= AERT_PIX_F32 ? "floats" : "integers"), -1);
  else if (lab.width < m->data.patch || lab.height < m->data.patch)
    rc = (aert_error("'%s' is %dx%d, smaller than the %d-pixel patch", lab.path, lab.width,
                    lab.height, m->data.patch), -1);
  if (t->unlabeled && (lab.width < m->data.patch || lab.height < m->data.patch))
    rc = (aert_error("'%s' is %dx%d, smaller than the model's %d x %d window: pad it to at least "
                     "that size", lab.path, lab.width, lab.height, m->data.patch, m->data.patch), -1);
  *bands = 0;
  for (int i = 0; rc == 0 && i < t->n_layers; i++) {
    geo_layer *l = &t->layer[i];
    path = tile_path(t, k, l->name);
    if (!path || aert_raster_open(&r, path) != 0) {
      free(path);
      rc = -1;
      break;
    }
    free(path);
    char why[256];
    if (r.width != t->w[k] || r.height != t->h[k])
      rc = (aert_error("'%s' is %dx%d but its tile's labels are %dx%d: the layers of a tile must "
                      "share one pixel grid", r.path, r.width, r.height, t->w[k], t->h[k]), -1);
    else if (aert_georef_compare(&lab.geo, &r.geo, why, sizeof why) != 0)
      rc = (aert_error("'%s' and '%s' do not lie on one pixel grid: %s", lab.path, r.path, why), -1);
    else if (l->band0 + (l->nbands ? l->nbands : 1) > r.bands)
      rc = (aert_error("'%s' has %d band(s); the layer '%s:%d-%d' asks for bands up to %d", r.path,
                      r.bands, l->name, l->band0 + 1, l->band0 + l->nbands, l->band0 + l->nbands), -1);
    *bands += l->nbands ? l->nbands : r.bands;
    aert_raster_close(&r);
  }
  aert_raster_close(&lab);
  return rc;
}

/* Checks every tile; a bad one stops the load, or is dropped with --bad-tiles skip. */
static int check_tiles(aert_tiles *t) {
  int want = t->m->in_shape[2], kept = 0;
  for (int k = 0; k < t->n; k++) {
    int bands = 0, rc = check_tile(t, k, &bands);
    if (rc == 0 && bands != want && (t->scene || t->scenes)) {
      char *path = tile_path(t, k, "");
      aert_error("'%s' has %d band(s), model '%s' takes %d: one file given to --input holds the "
                 "model's input bands in the order of its layers (or name it <tile>_<first "
                 "layer>.tif with the other layers beside it)", path ? path : t->tile[k], bands,
                 t->m->name, want);
      free(path);
      return -1;
    }
    if (rc == 0 && bands != want) {
      char list[512] = "";
      for (int i = 0; i < t->n_layers; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", t->layer[i].name);
      aert_error("tile '%s' in '%s': the layers %s give %d bands per pixel, but model '%s' takes "
                 "%d", t->tile[k], t->dir, list, bands, t->m->name, want);
      return -1;   /* the spec and the data disagree: skipping cannot help */
    }
    if (rc != 0 && !t->skip_bad)
      return aert_error("tile '%s' is unusable (--bad-tiles skip would leave it out)", t->tile[k]), -1;
    if (rc != 0) {
      printf("skipping tile '%s' in '%s'\n", t->tile[k], t->dir);
      free(t->tile[k]);
      t->skipped++;
      continue;
    }
    t->tile[kept] = t->tile[k], t->w[kept] = t->w[k], t->h[kept] = t->h[k];
    kept++;
  }
  t->n = kept;
  if (kept == 0)
    return aert_error("no usable tiles left in '%s'", t->dir), -1;
  return 0;
}

static int alloc_sizes(aert_tiles *t) {
  t->w = aert_alloc(sizeof(int) * t->n, "tiles");
  t->h = aert_alloc(sizeof(int) * t->n, "tiles");
  t->bad = aert_alloc(sizeof(int) * t->n, "tiles");
  return t->w && t->h && t->bad ? 0 : -1;
}

/* Data-parallel ranks (aert_tiles_share): rank 0 has listed and checked the tiles and sends
 * their names and sizes; the others take them instead of reading every header again. */
static int share_tile_list(aert_tiles *t, int follower) {
  const long head = 2 * (long)sizeof(int);   /* per tile: width, height, then the name */
  long bytes = 0, at = 0;
  for (int k = 0; !follower && k < t->n; k++)
    bytes += head + (long)strlen(t->tile[k]) + 1;
  aert_dist_broadcast(&t->n, sizeof t->n);
  aert_dist_broadcast(&bytes, sizeof bytes);
  char *buf = aert_alloc((size_t)bytes, "tile list");
  if (!buf)
    return -1;
  for (int k = 0; !follower && k < t->n; k++) {
    memcpy(buf + at, &t->w[k], sizeof(int));
    memcpy(buf + at + sizeof(int), &t->h[k], sizeof(int));
    strcpy(buf + at + head, t->tile[k]);
    at += head + (long)strlen(t->tile[k]) + 1;
  }
  aert_dist_broadcast(buf, bytes);
  int rc = 0;
  if (follower) {
    t->tile = aert_alloc(sizeof(char *) * (size_t)(t->n ? t->n : 1), "tile list");
    rc = t->tile && alloc_sizes(t) == 0 ? 0 : -1;
    for (int k = 0; rc == 0 && k < t->n; k++) {
      memcpy(&t->w[k], buf + at, sizeof(int));
      memcpy(&t->h[k], buf + at + sizeof(int), sizeof(int));
      t->tile[k] = strdup(buf + at + head);
      rc = t->tile[k] ? 0 : (aert_error("out of memory for the tile list"), -1);
      at += head + (long)strlen(buf + at + head) + 1;
    }
  }
  free(buf);
  return rc;
}

void aert_tiles_free(aert_tiles *t) {
  if (!t)
    return;
  for (int i = 0; t->reader && i < t->threads; i++) {
    for (int o = 0; o < AERT_OPEN_TILES; o++)
      for (int j = 0; t->reader[i].open[o].tile >= 0 && j <= t->n_layers; j++)
        aert_raster_close(&t->reader[i].open[o].r[j]);
    free(t->reader[i].labels);
    free(t->reader[i].nodata);
  }
  if (t->skipped)
    printf("skipped %ld bad tile(s) in '%s'\n", t->skipped, t->dir);
  for (int i = 0; i < t->n; i++)
    free(t->tile[i]);
  free(t->tile);
  free(t->w);
  free(t->h);
  free(t->bad);
  free(t->reader);
  free(t->dir);
  free(t->scene);
  pthread_mutex_destroy(&t->mu);
  pthread_mutex_destroy(&t->fill_mu);
  free(t);
}

/* One file whose bands are the whole input (a scene of any size), as a tile named by the
 * file without its extension. */
static int scene_tile(aert_tiles *t, const char *path) {
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  t->n_layers = 1;
  memset(&t->layer[0], 0, sizeof t->layer[0]);
  t->scene = strdup(path);
  t->tile = malloc(sizeof(char *));
  if (!t->scene || !t->tile || !(t->tile[0] = strndup(base, dot ? (size_t)(dot - base) : strlen(base))))
    return aert_error("out of memory"), -1;
  t->n = 1;
  return 0;
}

/* The tiles of dir; unlabeled: named by the first layer's files, without label files; only:
 * just that tile, or NULL for all; scene: instead, that one file of every band. */
aert_tiles *aert_geo_tiles_open(const aert_model *m, const char *dir, int unlabeled, const char *only,
                              const char *scene) {
  aert_tiles *t = aert_alloc(sizeof *t, "tiles");
  if (!t)
    return NULL;
  pthread_mutex_init(&t->mu, NULL);
  pthread_mutex_init(&t->fill_mu, NULL);
  t->m = m;
  t->threads = config.threads;
  t->skip_bad = config.skip_bad;
  t->dir = strdup(dir);
  const aert_data *d = &m->data;
  t->n_layers = d->n_layers ? d->n_layers : 1;
  int rc = t->dir ? 0 : -1;
  for (int i = 0; rc == 0 && i < t->n_layers; i++)
    rc = parse_layer(d->n_layers ? d->layers[i] : "naip-new", &t->layer[i]);
  t->unlabeled = unlabeled;
  int shared = config.shared && aert_dist_size() > 1 && !scene, follower = shared && aert_dist_rank() > 0;
  if (rc == 0 && scene)
    rc = scene_tile(t, scene);
  else if (rc == 0 && !follower)
    rc = find_tiles(t, unlabeled ? t->layer[0].name : label_layer(m));
  if (rc == 0 && only)
    rc = keep_only(t, only);
  if (rc == 0 && !follower)
    rc = alloc_sizes(t) == 0 ? check_tiles(t) : -1;
  if (rc == 0 && shared)
    rc = share_tile_list(t, follower);
  t->reader = rc == 0 ? aert_alloc(sizeof(geo_reader) * t->threads, "tile readers") : NULL;
  if (rc == 0 && !t->reader)
    rc = -1;
  /* open files: at most about 256 over all readers; decoded chunks: 32 MiB per reader */
  int files = t->n_layers + !unlabeled;
  t->open_max = 256 / (t->threads * files);
  t->open_max = t->open_max < 1 ? 1 : t->open_max > AERT_OPEN_TILES ? AERT_OPEN_TILES : t->open_max;
  t->cache_bytes = (32L << 20) / (t->open_max * files);
  for (int i = 0; rc == 0 && i < t->threads; i++) {
    t->reader[i].tile = -1;
    for (int o = 0; o < AERT_OPEN_TILES; o++)
      t->reader[i].open[o].tile = -1;
    t->reader[i].labels = aert_alloc(sizeof(float) * d->patch * d->patch, "label patch");
    t->reader[i].nodata = aert_alloc((size_t)d->patch * d->patch, "no-data patch");
    rc = t->reader[i].labels && t->reader[i].nodata ? 0 : -1;
  }
  if (rc != 0) {
    aert_tiles_free(t);
    return NULL;
  }
  return t;
}

/* ---- patches ------------------------------------------------------------------------- */
/* Grid patches of a tile: ceil(w/p) x ceil(h/p), the last row and column flush with the edge. */
static long grid_count(const aert_tiles *t, int k, int p) {
  return (long)((t->w[k] + p - 1) / p) * ((t->h[k] + p - 1) / p);
}

static void grid_origin(const aert_tiles *t, int k, int p, long j, int *x0, int *y0) {
  int gx = (t->w[k] + p - 1) / p;
  *x0 = (int)(j % gx) * p, *y0 = (int)(j / gx) * p;
  if (*x0 > t->w[k] - p) *x0 = t->w[k] - p;
  if (*y0 > t->h[k] - p) *y0 = t->h[k] - p;
}

/* Where item i of a view lies: its tile and the patch's top-left corner. Training items
 * draw their corner from (draw, tile, index); grid items walk the tiles' grids. */
static void locate(const aert_dataset *ds, long i, uint64_t draw, int *tile, int *x0, int *y0) {
  const aert_tiles *t = ds->tiles;
  int p = t->m->data.patch;
  if (!ds->grid) {
    int ppt = t->m->data.patches_per_tile;
    int k = ds->t0 + (int)(i / ppt);
    uint64_t s = aert_hash64(draw ^ aert_hash64(((uint64_t)k << 32) ^ (uint64_t)(i % ppt)));
    *tile = k;
    *x0 = (int)(aert_uniform(s, 0) * (t->w[k] - p + 1));
    *y0 = (int)(aert_uniform(s, 1) * (t->h[k] - p + 1));
    return;
  }
  for (int k = ds->t0; k < ds->t1; k++) {
    long c = grid_count(t, k, p);
    if (i < c) {
      *tile = k;
      grid_origin(t, k, p, i, x0, y0);
      return;
    }
    i -= c;
  }
  *tile = ds->t1 - 1, *x0 = *y0 = 0;   /* not reached for i < n */
}

static long view_count(const aert_tiles *t, int t0, int t1, int grid) {
  long n = 0;
  for (int k = t0; k < t1; k++)
    n += grid ? grid_count(t, k, t->m->data.patch) : t->m->data.patches_per_tile;
  return n;
}

int aert_geo_reader_open(aert_tiles *t, geo_reader *r, int tile) {
  geo_open *o = NULL, *lru = &r->open[0];
  r->clock++;
  for (int i = 0; i < t->open_max; i++) {
    if (r->open[i].tile == tile)
      o = &r->open[i];
    if (r->open[i].used < lru->used)
      lru = &r->open[i];   /* an empty slot has never been used: 0 */
  }
  if (!o) {   /* open its files in place of the tile used longest ago */
    o = lru;
    for (int j = 0; o->tile >= 0 && j <= t->n_layers; j++)
      aert_raster_close(&o->r[j]);
    o->tile = -1;
    if (r->tile >= 0 && r->r == o->r)
      r->tile = -1, r->r = NULL;
    for (int j = 0; j < t->n_layers + !t->unlabeled; j++) {
      char *path = tile_path(t, tile, j < t->n_layers ? t->layer[j].name : label_layer(t->m));
      int rc = path ? aert_raster_open(&o->r[j], path) : -1;
      free(path);
      if (rc != 0) {
        while (j-- > 0)
          aert_raster_close(&o->r[j]);
        return -1;
      }
      aert_raster_set_cache(&o->r[j], t->cache_bytes);
    }
    o->tile = tile;
  }
  o->used = r->clock;
  r->tile = tile;
  r->r = o->r;
  return 0;
}

static float class_of(const aert_model *m, float label) {
  int v = (int)label;
  if (v == m->ignore_label || (float)v != label)
    return -1.0f;
  for (int c = 0; c < m->n_classes; c++)
    if (m->class_ids[c] == v)
      return (float)c;
  return -1.0f;   /* a label the spec does not name counts as no data */
}

/* A label value as a class index; -1 for the ignored label, the label file's NoData value and
 * values the spec does not name. */
float aert_geo_label_class(const aert_model *m, const aert_raster *lab, float label) {
  if (lab->has_nodata && (double)label == lab->nodata)
    return -1.0f;
  return class_of(m, label);
}

/* Marks in r->nodata the pixels of a layer just read (nb bands at channel off of x) that
 * its mask calls no data, or whose every band holds its NoData value (as rasterio's dataset
 * mask: a pixel is valid where any band is). */
static int mark_nodata(geo_reader *r, aert_raster *layer, int x0, int y0, int p, const float *x,
                       int C, int off, int nb) {
  float nd = (float)layer->nodata;
  for (long i = 0; layer->has_nodata && i < (long)p * p; i++) {
    int all = 1;
    for (int b = 0; b < nb && all; b++) {
      float v = x[i * C + off + b];
      all = isnan(nd) ? isnan(v) : v == nd;
    }
    r->nodata[i] |= all;
  }
  if (!layer->mask)
    return 0;
  if (aert_raster_read(layer->mask, x0, y0, p, p, 0, 1, r->labels, 1, 0) != 0)
    return -1;
  for (long i = 0; i < (long)p * p; i++)
    r->nodata[i] |= r->labels[i] == 0;
  return 0;
}

/* Reads one patch: raw band values into x (HWC), class indices into y (may be NULL; -1
 * where any layer has no data); r->nodata flags the pixels without data. */
int aert_geo_read_patch(aert_tiles *t, geo_reader *r, int tile, int x0, int y0, float *x, float *y) {
  const aert_model *m = t->m;
  int p = m->data.patch, C = m->in_shape[2], off = 0;
  if (aert_geo_reader_open(t, r, tile) != 0)
    return -1;
  memset(r->nodata, 0, (size_t)p * p);
  for (int j = 0; j < t->n_layers; j++) {
    int nb = t->layer[j].nbands ? t->layer[j].nbands : r->r[j].bands;
    if (aert_raster_read(&r->r[j], x0, y0, p, p, t->layer[j].band0, nb, x, C, off) != 0 ||
        mark_nodata(r, &r->r[j], x0, y0, p, x, C, off, nb) != 0)
      return -1;
    off += nb;
  }
  for (long i = 0; i < (long)p * p; i++)   /* no data reads as 0, whatever the file held */
    for (int c = 0; r->nodata[i] && c < C; c++)
      x[i * C + c] = 0;
  if (!y)
    return 0;
  aert_raster *lab = &r->r[t->n_layers];
  if (aert_raster_read(lab, x0, y0, p, p, 0, 1, r->labels, 1, 0) != 0)
    return -1;
  for (long i = 0; i < (long)p * p; i++)
    y[i] = r->nodata[i] ? -1.0f : aert_geo_label_class(m, lab, r->labels[i]);
  return 0;
}

void aert_geo_normalise(const aert_tiles *t, float *x) {
  const aert_model *m = t->m;
  int C = m->in_shape[2];
  long n = (long)m->data.patch * m->data.patch;
  if (t->standardize) {
    for (long i = 0; i < n; i++)
      for (int c = 0; c < C; c++)
        x[i * C + c] = (x[i * C + c] - t->mean[c]) * t->inv_std[c];
    return;
  }
  float scale = m->data.scale, offset = m->data.offset;
  for (long i = 0; i < n * C; i++)
    x[i] = x[i] * scale + offset;
}

/* One example; a tile that fails to read is reported and, with --bad-tiles skip, replaced
 * from then on by the next good tile (same corner, clamped), so the batch stays full. */
static int fetch(const aert_dataset *ds, geo_reader *r, long i, uint64_t draw, float *x, float *y) {
  aert_tiles *t = ds->tiles;
  int tile, x0, y0, p = t->m->data.patch;
  locate(ds, i, draw, &tile, &x0, &y0);
  for (int tries = 0; tries < t->n; tries++) {
    int k = ds->t0 + (tile - ds->t0 + tries) % (ds->t1 - ds->t0);
    if (t->bad[k])
      continue;
    int xx = x0 < t->w[k] - p ? x0 : t->w[k] - p, yy = y0 < t->h[k] - p ? y0 : t->h[k] - p;
    if (aert_geo_read_patch(t, r, k, xx, yy, x, y) == 0) {
      aert_geo_normalise(t, x);
      return 0;
    }
    if (!t->skip_bad)
      return -1;
    pthread_mutex_lock(&t->mu);
    if (!t->bad[k]) {
      t->bad[k] = 1;
      t->skipped++;
      aert_error("leaving tile '%s' out from here on (--bad-tiles skip)", t->tile[k]);
    }
    pthread_mutex_unlock(&t->mu);
  }
  return aert_error("every tile in '%s' failed to read", t->dir), -1;
}

typedef struct {
  const aert_model *m;
  const aert_dataset *ds;
  const long *order;
  long start, real;
  uint64_t draw;
  float *x, *y;
  int k, step, rc;
} fill_job;

/* How many readers fill a batch side by side: the data threads, at most one a patch (and
 * as many as aert_tiles_fill's jobs hold). */
static int fill_readers(const aert_tiles *t) {
  int n = t->threads < t->m->batch ? t->threads : t->m->batch;
  return n > 64 ? 64 : n;
}

/* The reader, of n, of tile k's random patches: the tile's place in the view mod n, so that
 * its strips or tiles are decoded and kept by one reader only, not by each. */
static int tile_reader(const aert_dataset *ds, int k, int n) { return (k - ds->t0) % n; }

/* Which of n readers reads example i (batch position b): random patches by their tile
 * (tile_reader, the tile as locate finds it); on a grid, neighbouring patches (which share
 * chunks) the same reader: the batch in n runs. */
static int reader_of(const aert_dataset *ds, long i, long b, long batch, int n) {
  if (ds->grid)
    return (int)(b * n / batch);
  return tile_reader(ds, ds->t0 + (int)(i / ds->tiles->m->data.patches_per_tile), n);
}

static void *fill_worker(void *arg) {
  fill_job *j = arg;
  const aert_model *m = j->m;
  geo_reader *r = &j->ds->tiles->reader[j->k];
  for (long b = 0; b < m->batch && j->rc == 0; b++) {
    long k = j->start + (b < j->real ? b : j->real - 1);
    long i = j->order ? j->order[k] : k;
    if (reader_of(j->ds, i, b, m->batch, j->step) == j->k)
      j->rc = fetch(j->ds, r, i, j->draw, j->x + b * m->in_size, j->y ? j->y + b * m->target_size : NULL);
  }
  return NULL;
}

/* A batch of patches, read by the data threads side by side (each with its own files). */
int aert_tiles_fill(const aert_model *m, const aert_dataset *ds, const long *order, long start,
                    uint64_t draw, float *x, float *y) {
  aert_tiles *t = ds->tiles;
  long real = ds->n - start < m->batch ? ds->n - start : m->batch;
  int n = fill_readers(t);
  fill_job job[64];
  pthread_t th[64];
  double t0 = aert_now();
  pthread_mutex_lock(&t->fill_mu);
  for (int k = 0; k < n; k++) {
    job[k] = (fill_job){m, ds, order, start, real, draw, x, y, k, n, 0};
    if (k > 0 && pthread_create(&th[k], NULL, fill_worker, &job[k]) != 0)
      job[k].rc = 1;   /* no thread: run it here below */
  }
  fill_worker(&job[0]);
  int rc = 0;
  for (int k = 1; k < n; k++) {
    if (job[k].rc == 1)
      job[k].rc = 0, fill_worker(&job[k]);
    else
      pthread_join(th[k], NULL);
  }
  for (int k = 0; k < n; k++)
    rc |= job[k].rc;
  pthread_mutex_unlock(&t->fill_mu);
  pthread_mutex_lock(&t->mu);
  t->patches += m->batch;
  t->seconds += aert_now() - t0;
  pthread_mutex_unlock(&t->mu);
  return rc ? -1 : (int)real;
}

void aert_tiles_rate(aert_tiles *t, long *patches, double *seconds) {
  pthread_mutex_lock(&t->mu);
  *patches = t->patches, *seconds = t->seconds;
  t->patches = 0, t->seconds = 0;
  pthread_mutex_unlock(&t->mu);
}

/* ---- normalisation statistics ------------------------------------------------------- */
/* A sample of the training tiles (4 random patches from each of up to 16 tiles spread over
 * the set): the class frequencies of `weights = auto`, the labels the spec does not name,
 * and for `standardize` each band's mean and standard deviation over labelled pixels. */
static int sample_stats(aert_tiles *t, const aert_dataset *ds) {
  const aert_model *m = t->m;
  int C = m->in_shape[2], p = m->data.patch;
  long np = (long)p * p, unknown = 0, counted = 0;
  double sum[AERT_MAX_BANDS] = {0}, sq[AERT_MAX_BANDS] = {0};
  float *x = aert_alloc(sizeof(float) * np * C, "statistics patch");
  if (!x)
    return -1;
  int tiles = ds->t1 - ds->t0, use = tiles < 16 ? tiles : 16;
  for (int u = 0; u < use; u++) {
    int k = ds->t0 + (int)((long)u * tiles / use);
    for (int j = 0; j < 4; j++) {
      uint64_t s = aert_hash64(0x7374617473ULL ^ ((uint64_t)k << 8) ^ (uint64_t)j);
      int x0 = (int)(aert_uniform(s, 0) * (t->w[k] - p + 1)), y0 = (int)(aert_uniform(s, 1) * (t->h[k] - p + 1));
      if (t->bad[k])
        break;
      geo_reader *r = &t->reader[tile_reader(ds, k, fill_readers(t))];   /* the one that trains on the tile */
      if (aert_geo_read_patch(t, r, k, x0, y0, x, NULL) != 0 ||
          aert_raster_read(&r->r[t->n_layers], x0, y0, p, p, 0, 1, r->labels, 1, 0) != 0) {
        if (!t->skip_bad) {
          free(x);
          return -1;
        }
        t->bad[k] = 1;   /* --bad-tiles skip: left out from the start */
        t->skipped++;
        aert_error("leaving tile '%s' out (--bad-tiles skip)", t->tile[k]);
        break;
      }
      for (long i = 0; i < np; i++) {
        float lab = r->labels[i];
        const aert_raster *lr = &r->r[t->n_layers];
        if ((int)lab == m->ignore_label || r->nodata[i] ||
            (lr->has_nodata && (double)lab == lr->nodata))
          continue;
        int cls = (int)class_of(m, lab);
        if (cls < 0)
          unknown++;
        else
          t->class_count[cls]++;
        counted++;
        for (int c = 0; c < C; c++)
          sum[c] += x[i * C + c], sq[c] += (double)x[i * C + c] * x[i * C + c];
      }
    }
  }
  free(x);
  if (counted == 0)
    return aert_error("no labelled pixels in the patches sampled from '%s' for the band statistics", t->dir), -1;
  for (int c = 0; c < C && t->standardize; c++) {
    double mean = sum[c] / counted, var = sq[c] / counted - mean * mean;
    double sd = var > 0 ? sqrt(var) : 0;
    if (sd < 1e-6) {
      printf("note: band %d is constant (%g) in the sampled patches; it is only centred\n", c + 1, mean);
      sd = 1;
    }
    t->mean[c] = (float)mean;
    t->inv_std[c] = (float)(1 / sd);
  }
  if (unknown)
    printf("note: %.2f%% of the sampled labelled pixels carry values the spec does not name; they "
           "count as no data\n", 100.0 * unknown / counted);
  return 0;
}

/* The statistics that a checkpoint carries (st->norm_*), or that a new run computed. */
void aert_tiles_get_norm(const aert_tiles *t, aert_train_state *st) {
  int C = t->m->in_shape[2];
  st->norm_bands = t->standardize ? C : 0;
  for (int c = 0; c < st->norm_bands; c++)
    st->norm_mean[c] = t->mean[c], st->norm_std[c] = 1 / t->inv_std[c];
}

void aert_tiles_class_counts(const aert_tiles *t, double *counts) {
  memcpy(counts, t->class_count, sizeof(double) * t->m->n_classes);
}

int aert_tiles_set_norm(aert_tiles *t, const aert_train_state *st, const char *from) {
  int C = t->m->in_shape[2];
  if (!t->standardize)
    return 0;
  if (st->norm_bands != C)
    return aert_error("'%s' holds band statistics for %d bands, model '%s' standardizes %d", from,
                      st->norm_bands, t->m->name, C), -1;
  for (int c = 0; c < C; c++)
    t->mean[c] = st->norm_mean[c], t->inv_std[c] = 1 / st->norm_std[c];
  return 0;
}

/* ---- the dataset -------------------------------------------------------------------- */
int aert_tiles_leader(void) {
  return !(config.shared && aert_dist_rank() > 0);
}

char *aert_tiles_folder(const aert_model *m, const char *dir, int train) {
  const char *sub = train ? (m->data.train_images ? m->data.train_images : "train")
                          : (m->data.test_images ? m->data.test_images : "test");
  char *path = aert_join(dir, sub);
  if (!path)
    aert_error("out of memory");
  return path;
}

/* train: the whole training folder (split by aert_data_split); else the test folder. */
int aert_tiles_load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds) {
  char *path = aert_tiles_folder(m, dir, train);
  if (!path)
    return -1;
  int rc = 0;
  if (aert_tiles_leader() && !aert_is_folder(path))   /* rank 0 checks */
    rc = (aert_error("no folder '%s': GeoTIFF data is a folder with train/ and test/ folders of "
                    "tiles <tile>_<layer>.tif (docs/runtime.md)", path), -1);
  memset(ds, 0, sizeof *ds);
  aert_tiles *t = rc == 0 ? aert_geo_tiles_open(m, path, 0, NULL, NULL) : NULL;
  free(path);
  if (!t)
    return -1;
  t->standardize = m->data.standardize;
  *ds = (aert_dataset){.in_size = m->in_size, .target_size = m->target_size, .owner = 1,
                       .tiles = t, .t0 = 0, .t1 = t->n, .grid = !train};
  ds->n = view_count(t, 0, t->n, ds->grid);
  if (limit > 0 && limit < ds->n)
    ds->n = limit;
  /* data-parallel ranks other than 0 get the band statistics and class weights from rank 0 */
  if (train && aert_dist_rank() == 0 && sample_stats(t, ds) != 0) {
    aert_tiles_free(t);   /* the set holds nothing else yet */
    *ds = (aert_dataset){0};
    return -1;
  }
  return 0;
}

/* Validation takes whole tiles, the last ones by name, read on the grid: patches of one
 * tile never land on both sides. */
void aert_tiles_split(aert_dataset *all, double validation, aert_dataset *train, aert_dataset *val) {
  aert_tiles *t = all->tiles;
  int nv = validation > 0 && t->n > 1 ? (int)ceil(validation * t->n) : 0;
  if (nv >= t->n)
    nv = t->n - 1;
  *train = *all;
  *val = *all;
  train->owner = val->owner = 0;
  train->t1 = t->n - nv, train->grid = 0;
  val->t0 = t->n - nv, val->grid = 1;
  long limit = all->n;
  train->n = view_count(t, train->t0, train->t1, 0);
  val->n = view_count(t, val->t0, val->t1, 1);
  if (limit < train->n)
    train->n = limit;
}

void aert_tiles_close(aert_dataset *ds) {
  aert_tiles_free(ds->tiles);
}

const aert_source aert_geotiff_source = {.load = aert_tiles_load, .split = aert_tiles_split,
                                         .fill = aert_tiles_fill, .free = aert_tiles_close};

void aert_tiles_first_layer(const aert_model *m, char *name, size_t n) {
  geo_layer l;
  if (parse_layer(m->data.n_layers ? m->data.layers[0] : "naip-new", &l) == 0)
    snprintf(name, n, "%s", l.name);
  else
    snprintf(name, n, "naip-new");
}
