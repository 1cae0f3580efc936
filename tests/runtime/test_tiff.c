/* test_tiff.c - GeoTIFF reading and writing: round trips of every pixel type and layout,
 * fixtures rewritten by GDAL (tiles, planes, ZSTD/LZW/JPEG, predictors, BigTIFF, big-endian),
 * georeferencing both ways, and broken files that must fail with a message. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>
#include "toy_model.h"

static const int bytes_of[] = {1, 2, 2, 4, 4, 4, 8};

/* Element i of a test image of type t: spread over the type's range, signs included. */
static double value(aert_pixel t, long i, unsigned seed) {
  uint32_t h = (uint32_t)(i * 2654435761u) ^ (seed * 40503u);
  h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
  switch (t) {
  case AERT_PIX_U8: return h & 255;
  case AERT_PIX_U16: return h & 65535;
  case AERT_PIX_I16: return (int16_t)(h & 65535);
  case AERT_PIX_U32: return h;
  case AERT_PIX_I32: return (int32_t)h;
  case AERT_PIX_F32: return (float)(((int)(h % 200001) - 100000) / 7.25);
  default: return ((int)(h % 2000001) - 1000000) / 3.0;
  }
}

static void *make_image(aert_pixel t, int w, int h, int c, unsigned seed) {
  long n = (long)w * h * c;
  unsigned char *img = malloc((size_t)n * bytes_of[t]);
  cr_assert(img);
  for (long i = 0; i < n; i++) {
    double v = value(t, i, seed);
    switch (t) {
    case AERT_PIX_U8: img[i] = (uint8_t)v; break;
    case AERT_PIX_U16: ((uint16_t *)img)[i] = (uint16_t)v; break;
    case AERT_PIX_I16: ((int16_t *)img)[i] = (int16_t)v; break;
    case AERT_PIX_U32: ((uint32_t *)img)[i] = (uint32_t)v; break;
    case AERT_PIX_I32: ((int32_t *)img)[i] = (int32_t)v; break;
    case AERT_PIX_F32: ((float *)img)[i] = (float)v; break;
    case AERT_PIX_F64: ((double *)img)[i] = v; break;
    }
  }
  return img;
}

/* Element i of img, as the reader must return it. */
static float expected(aert_pixel t, const void *img, long i) {
  switch (t) {
  case AERT_PIX_U8: return ((const uint8_t *)img)[i];
  case AERT_PIX_U16: return ((const uint16_t *)img)[i];
  case AERT_PIX_I16: return ((const int16_t *)img)[i];
  case AERT_PIX_U32: return (float)((const uint32_t *)img)[i];
  case AERT_PIX_I32: return (float)((const int32_t *)img)[i];
  case AERT_PIX_F32: return ((const float *)img)[i];
  default: return (float)((const double *)img)[i];
  }
}

/* Reads a window into a wider HWC buffer (one spare channel each side) and compares it with
 * the source image, within tol; the spare channels must stay untouched. Returns the mean
 * absolute error. */
static double check_window(aert_raster *r, aert_pixel t, const void *img, int x0, int y0, int w,
                           int h, int band0, int nb, double tol, const char *what) {
  int dc = nb + 2;
  float *dst = malloc(sizeof(float) * w * h * dc);
  cr_assert(dst);
  for (long i = 0; i < (long)w * h * dc; i++)
    dst[i] = -12345.5f;
  cr_assert_eq(aert_raster_read(r, x0, y0, w, h, band0, nb, dst, dc, 1), 0,
               "%s: window %d,%d %dx%d bands %d+%d", what, x0, y0, w, h, band0, nb);
  double sum = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      float *d = dst + ((long)y * w + x) * dc;
      cr_assert(d[0] == -12345.5f && d[nb + 1] == -12345.5f, "%s: spare channel written", what);
      for (int b = 0; b < nb; b++) {
        float want = expected(t, img, ((long)(y0 + y) * r->width + x0 + x) * r->bands + band0 + b);
        double err = fabs((double)d[1 + b] - want);
        sum += err;
        cr_assert(err <= tol, "%s: pixel %d,%d band %d is %.9g, expected %.9g", what, x0 + x,
                  y0 + y, band0 + b, d[1 + b], want);
      }
    }
  free(dst);
  return sum / ((double)w * h * nb);
}

/* The window x0, y0, w, h moved and cut to fit inside r, then checked. */
static void check_fit(aert_raster *r, aert_pixel t, const void *img, int x0, int y0, int w, int h,
                      int band0, int nb, double tol, const char *what) {
  x0 = x0 < r->width ? x0 : r->width - 1, y0 = y0 < r->height ? y0 : r->height - 1;
  w = x0 + w <= r->width ? w : r->width - x0, h = y0 + h <= r->height ? h : r->height - y0;
  check_window(r, t, img, x0, y0, w, h, band0, nb, tol, what);
}

/* Windows at odd places: across strip/tile edges, at the image's edge, single pixels, a
 * window read twice (from the kept chunks), band subsets. */
static void check_windows(aert_raster *r, aert_pixel t, const void *img, double tol,
                          const char *what) {
  int W = r->width, H = r->height, C = r->bands;
  check_window(r, t, img, 0, 0, W, H, 0, C, tol, what);
  check_fit(r, t, img, 13, 15, 20, 19, 0, C, tol, what);
  check_window(r, t, img, W - 7, H - 5, 7, 5, C - 1, 1, tol, what);
  check_window(r, t, img, 0, H - 9, W, 9, 0, C, tol, what);
  check_window(r, t, img, W - 1, H - 1, 1, 1, 0, C, tol, what);
  check_fit(r, t, img, 15, 14, 3, 4, C > 1 ? 1 : 0, C > 1 ? C - 1 : 1, tol, what);
  check_fit(r, t, img, 13, 15, 20, 19, 0, C, tol, what);
  check_fit(r, t, img, 31, 0, 2, H, 0, 1, tol, what);
}

static const char *type_names[] = {"u8", "u16", "i16", "u32", "i32", "f32", "f64"};

/* Every layout the writer makes, for one pixel type, read back exactly. */
static void round_trip(aert_pixel t) {
  char *dir = tmp_dir(), *path = path_in(dir, "rt.tif");
  int W = 45, H = 37, C = 3;
  void *img = make_image(t, W, H, C, (unsigned)t + 1);
  int comps[] = {COMPRESSION_ADOBE_DEFLATE, COMPRESSION_LZW, COMPRESSION_NONE};
  for (int k = 0; k < 24; k++) {
    aert_tiff_layout l = {.tile = k & 1 ? 16 : 0, .rows_per_strip = 7, .planar = (k >> 1) & 1,
                          .compression = comps[(k >> 2) % 3], .bigtiff = k >= 12};
    char what[96];
    snprintf(what, sizeof what, "%s %s %s compression %d%s", type_names[t],
             l.tile ? "tiles" : "strips", l.planar ? "planar" : "chunky", l.compression,
             l.bigtiff ? " bigtiff" : "");
    cr_assert_eq(aert_tiff_write(path, W, H, C, t, img, NULL, &l), 0, "%s", what);
    aert_raster r;
    cr_assert_eq(aert_raster_open(&r, path), 0, "%s", what);
    cr_assert(r.width == W && r.height == H && r.bands == C && r.type == t, "%s", what);
    cr_assert(r.planar == l.planar && r.tiled == (l.tile > 0), "%s", what);
    cr_assert(r.chunk_w == (l.tile ? 16 : W) && r.chunk_h == (l.tile ? 16 : 7), "%s", what);
    cr_assert(!r.geo.has_scale && !r.geo.has_tiepoint && !r.geo.n_keys, "%s", what);
    check_windows(&r, t, img, 0, what);
    aert_raster_close(&r);
    cr_assert(access(path, F_OK) == 0);
  }
  char *tmp = path_in(dir, "rt.tif.tmp");
  cr_assert(access(tmp, F_OK) != 0, "no temporary file is left behind");
  free(img), free(path), free(tmp);
}

Test(tiff, round_trip_u8) { round_trip(AERT_PIX_U8); }
Test(tiff, round_trip_u16) { round_trip(AERT_PIX_U16); }
Test(tiff, round_trip_i16) { round_trip(AERT_PIX_I16); }
Test(tiff, round_trip_u32) { round_trip(AERT_PIX_U32); }
Test(tiff, round_trip_i32) { round_trip(AERT_PIX_I32); }
Test(tiff, round_trip_f32) { round_trip(AERT_PIX_F32); }
Test(tiff, round_trip_f64) { round_trip(AERT_PIX_F64); }

Test(tiff, default_layout_and_one_band) {
  char *dir = tmp_dir(), *path = path_in(dir, "one.tif");
  void *img = make_image(AERT_PIX_U16, 40, 50, 1, 9);
  cr_assert_eq(aert_tiff_write(path, 40, 50, 1, AERT_PIX_U16, img, NULL, NULL), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  cr_assert(!r.tiled && !r.planar && r.chunk_w == 40 && r.chunk_h == 16 && r.bands == 1);
  TIFF *tif = r.tif;
  uint16_t comp = 0;
  TIFFGetField(tif, TIFFTAG_COMPRESSION, &comp);
  cr_assert_eq(comp, COMPRESSION_ADOBE_DEFLATE);
  check_windows(&r, AERT_PIX_U16, img, 0, "default layout");
  aert_raster_close(&r);
  free(img), free(path);
}

/* Reading a window whose strips/tiles are already decoded decodes nothing again, in every
 * plane of a planar file. */
Test(tiff, kept_chunks_are_not_decoded_again) {
  char *dir = tmp_dir(), *path = path_in(dir, "cache.tif");
  void *img = make_image(AERT_PIX_F32, 64, 64, 4, 3);
  aert_tiff_layout l = {.tile = 32, .planar = 1};
  cr_assert_eq(aert_tiff_write(path, 64, 64, 4, AERT_PIX_F32, img, NULL, &l), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  float dst[10 * 10 * 4];
  cr_assert_eq(aert_raster_read(&r, 3, 4, 10, 10, 0, 4, dst, 4, 0), 0);
  cr_assert_eq(r.chunk_id, 3 * 4, "the last tile decoded is plane 3's first");
  r.chunk_id = -7;
  cr_assert_eq(aert_raster_read(&r, 12, 20, 10, 10, 0, 4, dst, 4, 0), 0);
  cr_assert_eq(r.chunk_id, -7, "a window inside the kept tiles decodes nothing");
  cr_assert_eq(aert_raster_read(&r, 30, 20, 10, 10, 1, 2, dst, 4, 0), 0);
  cr_assert_eq(r.chunk_id, 2 * 4 + 1, "the window reaching the next tile decodes it");
  check_windows(&r, AERT_PIX_F32, img, 0, "after caching");
  aert_raster_close(&r);
  free(img), free(path);
}

/* With room for every chunk, windows drawn anywhere in any order decode each chunk once;
 * with room for two per plane, chunk k of a plane stays in slot k % 2. */
Test(tiff, a_cache_decodes_each_chunk_once) {
  char *dir = tmp_dir(), *path = path_in(dir, "cache_all.tif");
  void *img = make_image(AERT_PIX_U8, 96, 64, 3, 5);
  aert_tiff_layout l = {.tile = 32};
  cr_assert_eq(aert_tiff_write(path, 96, 64, 3, AERT_PIX_U8, img, NULL, &l), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  aert_raster_set_cache(&r, 1L << 20);
  float dst[40 * 40 * 3];
  int at[][2] = {{0, 0}, {50, 20}, {10, 24}, {56, 0}, {30, 10}, {0, 24}};
  for (int i = 0; i < 6; i++)
    cr_assert_eq(aert_raster_read(&r, at[i][0], at[i][1], 40, 40, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.slots, 6, "the 3 x 2 tiles all kept");
  r.chunk_id = -7;
  for (int i = 5; i >= 0; i--)
    cr_assert_eq(aert_raster_read(&r, at[i][0], at[i][1], 40, 40, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.chunk_id, -7, "every window again without decoding");
  check_windows(&r, AERT_PIX_U8, img, 0, "a full cache");
  aert_raster_set_cache(&r, 2 * 32 * 32 * 3);
  cr_assert_eq(aert_raster_read(&r, 0, 0, 40, 10, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.slots, 2);
  cr_assert_eq(r.chunk_id, 1, "tiles 0 and 1 decoded, into slots 0 and 1");
  r.chunk_id = -7;
  cr_assert_eq(aert_raster_read(&r, 3, 3, 20, 20, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.chunk_id, -7, "tile 0 still kept");
  cr_assert_eq(aert_raster_read(&r, 70, 3, 20, 20, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.chunk_id, 2, "tile 2 replaces tile 0");
  cr_assert_eq(aert_raster_read(&r, 40, 3, 20, 20, 0, 3, dst, 3, 0), 0);
  cr_assert_eq(r.chunk_id, 2, "tile 1 still kept");
  check_windows(&r, AERT_PIX_U8, img, 0, "a cache of two");
  aert_raster_close(&r);
  free(img), free(path);
}

/* ---- georeferencing -------------------------------------------------------------- */

/* UTM zone 18N on NAD83 (EPSG:26918), 1 m pixels, origin 300000 E, 4300000 N. */
static uint16_t utm_keys[] = {1, 1, 0, 4, 1024, 0, 1, 1, 1025, 0, 1, 1, 1026, 34737, 11, 0,
                              3072, 0, 1, 26918};
static double utm_doubles[] = {6378137.0, 298.257222101};

static aert_georef utm_georef(void) {
  aert_georef g = {.has_tiepoint = 1, .has_scale = 1,
                   .tiepoint = {0, 0, 0, 300000.0, 4300000.0, 0}, .scale = {1.0, 1.0, 0},
                   .n_keys = 20, .keys = utm_keys, .n_doubles = 2, .doubles = utm_doubles,
                   .ascii = (char *)"UTM 18N|"};
  return g;
}

Test(tiff, georef_round_trip) {
  char *dir = tmp_dir(), *path = path_in(dir, "geo.tif");
  void *img = make_image(AERT_PIX_U8, 20, 10, 4, 1);
  aert_georef g = utm_georef();
  aert_tiff_layout l = {.tile = 16, .bigtiff = 1};
  cr_assert_eq(aert_tiff_write(path, 20, 10, 4, AERT_PIX_U8, img, &g, &l), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  cr_assert(r.geo.has_tiepoint && r.geo.has_scale);
  cr_assert_arr_eq(r.geo.tiepoint, g.tiepoint, sizeof g.tiepoint);
  cr_assert_arr_eq(r.geo.scale, g.scale, sizeof g.scale);
  cr_assert_eq(r.geo.n_keys, 20);
  cr_assert_arr_eq(r.geo.keys, utm_keys, sizeof utm_keys);
  cr_assert_eq(r.geo.n_doubles, 2);
  cr_assert_arr_eq(r.geo.doubles, utm_doubles, sizeof utm_doubles);
  cr_assert_str_eq(r.geo.ascii, "UTM 18N|");
  /* carried verbatim from an input to a prediction */
  char *out = path_in(dir, "copy.tif");
  cr_assert_eq(aert_tiff_write(out, 20, 10, 4, AERT_PIX_U8, img, &r.geo, NULL), 0);
  aert_raster c;
  cr_assert_eq(aert_raster_open(&c, out), 0);
  cr_assert_arr_eq(c.geo.keys, utm_keys, sizeof utm_keys);
  cr_assert_str_eq(c.geo.ascii, "UTM 18N|");
  aert_raster_close(&c);
  aert_raster_close(&r);
  free(img), free(path), free(out);
}

/* Runs a command line; its output goes to the returned text (malloc'd). */
static char *run(const char *cmd, int *status) {
  FILE *p = popen(cmd, "r");
  cr_assert(p, "cannot run %s", cmd);
  size_t cap = 1 << 16, n = 0;
  char *text = calloc(1, cap);
  for (size_t k; (k = fread(text + n, 1, cap - 1 - n, p)) > 0;)
    n += k;
  *status = pclose(p);
  return text;
}

Test(tiff, gdalinfo_reads_our_georeferencing) {
  char *dir = tmp_dir(), *path = path_in(dir, "geo.tif"), cmd[512];
  void *img = make_image(AERT_PIX_F32, 30, 20, 2, 1);
  aert_georef g = utm_georef();
  g.scale[0] = g.scale[1] = 0.6;
  cr_assert_eq(aert_tiff_write(path, 30, 20, 2, AERT_PIX_F32, img, &g, NULL), 0);
  snprintf(cmd, sizeof cmd, "gdalinfo '%s' 2>&1", path);
  int status;
  char *out = run(cmd, &status);
  cr_assert_eq(status, 0, "gdalinfo failed:\n%s", out);
  const char *o = strstr(out, "Origin = ("), *s = strstr(out, "Pixel Size = (");
  double ox, oy, sx, sy;
  cr_assert(o && sscanf(o, "Origin = (%lf,%lf)", &ox, &oy) == 2, "gdalinfo:\n%s", out);
  cr_assert(s && sscanf(s, "Pixel Size = (%lf,%lf)", &sx, &sy) == 2, "gdalinfo:\n%s", out);
  cr_assert(ox == 300000.0 && oy == 4300000.0 && sx == 0.6 && sy == -0.6, "gdalinfo:\n%s", out);
  cr_assert(strstr(out, "UTM zone 18N"), "gdalinfo names the CRS:\n%s", out);
  cr_assert(strstr(out, "Size is 30, 20") && strstr(out, "Type=Float32"), "gdalinfo:\n%s", out);
  free(out), free(img), free(path);
}

/* ---- files written by GDAL ------------------------------------------------------- */

/* Writes a source image with our writer, has gdal_translate rewrite it with opts, and reads
 * GDAL's file back: values within tol, georeferencing kept. Returns the mean error. */
static double via_gdal(aert_pixel t, int W, int H, int C, const char *opts, double tol,
                       int want_tiled, int want_planar, const void *src) {
  char *dir = tmp_dir(), *in = path_in(dir, "src.tif"), *out = path_in(dir, "gdal.tif");
  void *img = src ? (void *)src : make_image(t, W, H, C, 5);
  aert_georef g = utm_georef();
  cr_assert_eq(aert_tiff_write(in, W, H, C, t, img, &g, NULL), 0);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "gdal_translate -q %s '%s' '%s' 2>&1", opts, in, out);
  int status;
  char *text = run(cmd, &status);
  cr_assert_eq(status, 0, "%s failed:\n%s", cmd, text);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, out), 0, "%s", opts);
  cr_assert(r.width == W && r.height == H && r.bands == C && r.type == t, "%s", opts);
  cr_assert(r.tiled == want_tiled && r.planar == want_planar, "%s: tiled %d planar %d", opts,
            r.tiled, r.planar);
  cr_assert(r.geo.has_tiepoint && r.geo.has_scale && r.geo.n_keys >= 4, "%s: georef", opts);
  cr_assert(r.geo.tiepoint[3] == 300000.0 && r.geo.tiepoint[4] == 4300000.0, "%s", opts);
  cr_assert(r.geo.scale[0] == 1.0 && r.geo.scale[1] == 1.0, "%s", opts);
  double mean = check_window(&r, t, img, 0, 0, W, H, 0, C, tol, opts);
  check_windows(&r, t, img, tol, opts);
  aert_raster_close(&r);
  if (!src)
    free(img);
  free(text), free(in), free(out);
  return mean;
}

Test(tiff, gdal_tiles_band_interleaved_zstd) {
  via_gdal(AERT_PIX_U16, 70, 50, 4, "-co TILED=YES -co BLOCKXSIZE=32 -co BLOCKYSIZE=32 "
           "-co INTERLEAVE=BAND -co COMPRESS=ZSTD", 0, 1, 1, NULL);
}

Test(tiff, gdal_lzw_horizontal_predictor) {
  via_gdal(AERT_PIX_I16, 61, 43, 3, "-co COMPRESS=LZW -co PREDICTOR=2 -co BLOCKYSIZE=5", 0, 0,
           0, NULL);
  via_gdal(AERT_PIX_U32, 61, 43, 2, "-co COMPRESS=DEFLATE -co PREDICTOR=2 -co INTERLEAVE=BAND",
           0, 0, 1, NULL);
}

Test(tiff, gdal_float_predictor) {
  via_gdal(AERT_PIX_F32, 50, 40, 2, "-co TILED=YES -co BLOCKXSIZE=16 -co BLOCKYSIZE=16 "
           "-co COMPRESS=DEFLATE -co PREDICTOR=3", 0, 1, 0, NULL);
  via_gdal(AERT_PIX_F64, 50, 40, 1, "-co COMPRESS=LZMA -co PREDICTOR=3", 0, 0, 0, NULL);
}

Test(tiff, gdal_bigtiff_big_endian) {
  via_gdal(AERT_PIX_F64, 47, 35, 3, "-co BIGTIFF=YES -co ENDIANNESS=BIG -co TILED=YES "
           "-co BLOCKXSIZE=32 -co BLOCKYSIZE=16 -co INTERLEAVE=BAND", 0, 1, 1, NULL);
  via_gdal(AERT_PIX_I32, 47, 35, 2, "-co ENDIANNESS=BIG -co COMPRESS=LZW -co PREDICTOR=2", 0, 0,
           0, NULL);
  via_gdal(AERT_PIX_U16, 47, 35, 3, "-co ENDIANNESS=BIG -co COMPRESS=PACKBITS -co BIGTIFF=YES",
           0, 0, 0, NULL);
}

/* Smooth RGB, so that JPEG's loss stays small. */
static unsigned char *smooth_rgb(int W, int H) {
  unsigned char *img = malloc((size_t)W * H * 3);
  cr_assert(img);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int b = 0; b < 3; b++)
        img[((long)y * W + x) * 3 + b] =
          (unsigned char)(128 + 50 * sin(x / (6.0 + b)) + 40 * cos(y / (9.0 - b)));
  return img;
}

Test(tiff, gdal_jpeg) {
  unsigned char *img = smooth_rgb(72, 56);
  double e1 = via_gdal(AERT_PIX_U8, 72, 56, 3, "-co COMPRESS=JPEG -co PHOTOMETRIC=YCBCR "
                       "-co TILED=YES -co BLOCKXSIZE=32 -co BLOCKYSIZE=32", 40, 1, 0, img);
  double e2 = via_gdal(AERT_PIX_U8, 72, 56, 3, "-co COMPRESS=JPEG -co BLOCKYSIZE=16", 40, 0, 0,
                       img);
  double e3 = via_gdal(AERT_PIX_U8, 72, 56, 3, "-co COMPRESS=JPEG -co PHOTOMETRIC=YCBCR "
                       "-co BLOCKYSIZE=16", 40, 0, 0, img);
  cr_assert(e1 > 0 && e2 > 0 && e3 > 0 && e1 < 3 && e2 < 3 && e3 < 3,
            "JPEG is lossy, a little: mean errors %g %g %g", e1, e2, e3);
  free(img);
}

Test(tiff, gdal_create_constant_bands_and_georef) {
  char *dir = tmp_dir(), *path = path_in(dir, "c.tif"), cmd[512];
  snprintf(cmd, sizeof cmd, "gdal_create -q -of GTiff -outsize 33 21 -bands 2 -ot Int16 "
           "-burn 7 -burn -300 -a_srs EPSG:4326 -a_ullr 10 50 13.3 47.9 "
           "-co TILED=YES -co BLOCKXSIZE=16 -co BLOCKYSIZE=16 '%s' 2>&1", path);
  int status;
  char *text = run(cmd, &status);
  cr_assert_eq(status, 0, "%s:\n%s", cmd, text);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  cr_assert(r.type == AERT_PIX_I16 && r.bands == 2 && r.tiled);
  float px[33 * 21 * 2];
  cr_assert_eq(aert_raster_read(&r, 0, 0, 33, 21, 0, 2, px, 2, 0), 0);
  for (int i = 0; i < 33 * 21; i++)
    cr_assert(px[2 * i] == 7 && px[2 * i + 1] == -300);
  cr_assert(r.geo.tiepoint[3] == 10.0 && r.geo.tiepoint[4] == 50.0);
  cr_assert(fabs(r.geo.scale[0] - 0.1) < 1e-12 && fabs(r.geo.scale[1] - 0.1) < 1e-12);
  aert_raster_close(&r);
  free(text), free(path);
}

/* ---- several threads, each its own file ------------------------------------------- */

typedef struct {
  const char *path;
  const float *want;
  int rc, bad;
} reader_job;

static void *read_many(void *arg) {
  reader_job *j = arg;
  for (int k = 0; k < 30; k++) {
    aert_raster r;
    j->rc = aert_raster_open(&r, j->path);
    if (j->rc)
      return NULL;
    float px[24 * 24];
    for (int y = 0; y + 24 <= r.height; y += 20)
      if ((j->rc = aert_raster_read(&r, 3, y, 24, 24, 0, 1, px, 1, 0)) != 0)
        break;
      else
        for (int i = 0; i < 24 * 24; i++)
          j->bad += px[i] != j->want[(long)(y + i / 24) * 40 + 3 + i % 24];
    aert_raster_close(&r);
  }
  return NULL;
}

Test(tiff, threads_read_different_files_at_once) {
  char *dir = tmp_dir(), *paths[4];
  float *imgs[4];
  pthread_t th[4];
  reader_job jobs[4];
  for (int i = 0; i < 4; i++) {
    char name[24];
    snprintf(name, sizeof name, "t%d.tif", i);
    paths[i] = path_in(dir, name);
    imgs[i] = make_image(AERT_PIX_F32, 40, 90, 1, 20 + i);
    aert_tiff_layout l = {.tile = i & 1 ? 16 : 0, .compression = i < 2 ? 0 : COMPRESSION_LZW};
    cr_assert_eq(aert_tiff_write(paths[i], 40, 90, 1, AERT_PIX_F32, imgs[i], NULL, &l), 0);
    jobs[i] = (reader_job){paths[i], imgs[i], 0, 0};
  }
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, read_many, &jobs[i]);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert(jobs[i].rc == 0 && jobs[i].bad == 0, "thread %d: rc %d, %d wrong", i, jobs[i].rc,
              jobs[i].bad);
    free(imgs[i]), free(paths[i]);
  }
}

/* ---- what must fail, and how ------------------------------------------------------ */

static const char *open_path;
static aert_raster opened;
static int open_it(void *ctx) { return aert_raster_open(&opened, open_path); }

/* Opening path must fail; the message (returned) must name it. */
static char *open_error(const char *path) {
  int rc;
  open_path = path;
  char *err = run_capturing_stderr(open_it, NULL, &rc);
  cr_assert_eq(rc, -1, "opening '%s' succeeded", path);
  cr_assert(strstr(err, path) && strncmp(err, "aec: ", 5) == 0, "message: %s", err);
  cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
  cr_assert(opened.tif == NULL && opened.chunk == NULL && opened.path == NULL);
  return err;
}

typedef struct {
  aert_raster *r;
  int x0, y0, w, h, b0, nb, dc, off;
} read_call;

static int read_it(void *ctx) {
  read_call *c = ctx;
  float *dst = calloc((size_t)(c->w > 0 ? c->w : 1) * (c->h > 0 ? c->h : 1) * 16, sizeof(float));
  int rc = aert_raster_read(c->r, c->x0, c->y0, c->w, c->h, c->b0, c->nb, dst, c->dc, c->off);
  free(dst);
  return rc;
}

static char *read_error(read_call c) {
  int rc;
  char *err = run_capturing_stderr(read_it, &c, &rc);
  cr_assert_eq(rc, -1, "read %d,%d %dx%d succeeded", c.x0, c.y0, c.w, c.h);
  cr_assert(strstr(err, c.r->path) && strncmp(err, "aec: ", 5) == 0, "message: %s", err);
  cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
  return err;
}

Test(tiff, missing_file_and_text_file) {
  char *err = open_error("/nonexistent/x_lc.tif");
  cr_assert(strstr(err, "cannot read '/nonexistent/x_lc.tif': No such file"), "%s", err);
  char *dir = tmp_dir(), *path = path_in(dir, "text.tif");
  FILE *f = fopen(path, "w");
  fputs("this is not a TIFF at all, only words\n", f);
  fclose(f);
  err = open_error(path);
  cr_assert(strstr(err, "is not a TIFF file"), "%s", err);
  free(path);
}

/* A libtiff-written file cut short: the directory is at its end, so open fails. A GDAL one
 * keeps its directory first: open succeeds, the strips past the cut fail to decode. */
Test(tiff, truncated_files) {
  char *dir = tmp_dir(), *ours = path_in(dir, "ours.tif"), *gdal = path_in(dir, "gdal.tif");
  void *img = make_image(AERT_PIX_U16, 64, 64, 2, 4);
  cr_assert_eq(aert_tiff_write(ours, 64, 64, 2, AERT_PIX_U16, img, NULL, NULL), 0);
  char cmd[512];
  int status;
  snprintf(cmd, sizeof cmd, "gdal_translate -q -co COMPRESS=NONE -co BLOCKYSIZE=8 '%s' '%s' 2>&1",
           ours, gdal);
  free(run(cmd, &status));
  cr_assert_eq(status, 0);
  for (int k = 0; k < 2; k++) {
    const char *p = k ? gdal : ours;
    struct stat st;
    cr_assert(stat(p, &st) == 0 && truncate(p, st.st_size / 2) == 0);
  }
  open_error(ours);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, gdal), 0, "GDAL's header and directory come first");
  float px[64 * 8 * 2];
  cr_assert_eq(aert_raster_read(&r, 0, 0, 64, 8, 0, 2, px, 2, 0), 0, "the first strip is whole");
  char *err = read_error((read_call){&r, 0, 40, 64, 24, 0, 2, 2, 0});
  cr_assert(strstr(err, "is truncated or corrupt: strip ") && strstr(err, " of 8 cannot be decoded"),
            "%s", err);
  cr_assert_eq(aert_raster_read(&r, 5, 1, 30, 6, 1, 1, px, 1, 0), 0, "still usable");
  aert_raster_close(&r);
  free(img), free(ours), free(gdal);
}

/* Writes a TIFF by hand with libtiff, of the given bits and photometric interpretation. */
static void write_raw_tiff(const char *path, int bits, int photometric, int format) {
  TIFF *tif = TIFFOpen(path, "w");
  cr_assert(tif);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 16u);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 8u);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, format);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, photometric);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 8u);
  if (photometric == PHOTOMETRIC_PALETTE) {
    static uint16_t map[256];
    TIFFSetField(tif, TIFFTAG_COLORMAP, map, map, map);
  }
  unsigned char row[16 * 8] = {0};
  cr_assert(TIFFWriteEncodedStrip(tif, 0, row, 16 * bits) >= 0);
  TIFFClose(tif);
}

Test(tiff, unsupported_sample_kinds_are_refused) {
  char *dir = tmp_dir(), *path = path_in(dir, "odd.tif");
  write_raw_tiff(path, 1, PHOTOMETRIC_MINISBLACK, SAMPLEFORMAT_UINT);
  char *err = open_error(path);
  cr_assert(strstr(err, "1-bit"), "%s", err);
  write_raw_tiff(path, 8, PHOTOMETRIC_PALETTE, SAMPLEFORMAT_UINT);   /* read as indices */
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  cr_assert(r.paletted && r.type == AERT_PIX_U8 && r.bands == 1);
  aert_raster_close(&r);
  write_raw_tiff(path, 4, PHOTOMETRIC_MINISBLACK, SAMPLEFORMAT_UINT);
  err = open_error(path);
  cr_assert(strstr(err, "4-bit unsigned samples are not supported"), "%s", err);
  write_raw_tiff(path, 8, PHOTOMETRIC_MINISBLACK, SAMPLEFORMAT_INT);
  err = open_error(path);
  cr_assert(strstr(err, "8-bit signed samples are not supported"), "%s", err);
  free(path);
}

static void put16(unsigned char *p, unsigned v) { p[0] = v & 255, p[1] = (v >> 8) & 255; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 65535), put16(p + 2, v >> 16); }

/* A little-endian TIFF made by hand whose header declares w x h pixels of 8 bits in one
 * uncompressed strip, with only 64 bytes of data behind it. */
static void write_huge_header(const char *path, uint32_t w, uint32_t h) {
  unsigned char f[8 + 2 + 8 * 12 + 4 + 64] = {'I', 'I', 42, 0};
  put32(f + 4, 8);
  put16(f + 8, 8);
  uint32_t tags[8][3] = {{256, 4, w}, {257, 4, h}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
                         {273, 4, 8 + 2 + 8 * 12 + 4}, {278, 4, h}, {279, 4, 64}};
  for (int i = 0; i < 8; i++) {
    unsigned char *e = f + 10 + 12 * i;
    put16(e, tags[i][0]), put16(e + 2, tags[i][1]), put32(e + 4, 1);
    if (tags[i][1] == 3)
      put16(e + 8, tags[i][2]);
    else
      put32(e + 8, tags[i][2]);
  }
  FILE *o = fopen(path, "wb");
  cr_assert(o && fwrite(f, 1, sizeof f, o) == sizeof f);
  fclose(o);
}

/* Opens open_path and reads its corners: -1 if anything fails. */
static int open_and_read(void *ctx) {
  aert_raster r;
  if (aert_raster_open(&r, open_path) != 0)
    return -1;
  float px[64];
  int w = r.width < 8 ? r.width : 8, h = r.height < 8 ? r.height : 8;
  int rc = aert_raster_read(&r, 0, 0, w, h, 0, 1, px, 1, 0) != 0 ||
           aert_raster_read(&r, r.width - w, r.height - h, w, h, 0, 1, px, 1, 0) != 0 ? -1 : 0;
  aert_raster_close(&r);
  return rc;
}

Test(tiff, huge_declared_sizes_are_refused_without_allocating) {
  char *dir = tmp_dir(), *path = path_in(dir, "huge.tif");
  write_huge_header(path, 8, 8);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0, "the hand-made header is valid");
  float px[64];
  cr_assert_eq(aert_raster_read(&r, 0, 0, 8, 8, 0, 1, px, 1, 0), 0);
  aert_raster_close(&r);
  uint32_t sizes[][2] = {{1u << 31, 1u << 31}, {(1u << 31) - 1, (1u << 31) - 1},
                         {(1u << 31) - 1, 1}, {1, (1u << 31) - 1}, {4000000000u, 7}};
  for (int i = 0; i < 5; i++) {   /* libtiff refuses some itself, this reader the rest */
    write_huge_header(path, sizes[i][0], sizes[i][1]);
    int rc;
    open_path = path;
    char *err = run_capturing_stderr(open_and_read, NULL, &rc);
    cr_assert(rc == -1 && strstr(err, path), "%u x %u: %s", sizes[i][0], sizes[i][1], err);
    free(err);
  }
  free(path);
}

Test(tiff, bad_windows_and_bands_are_refused) {
  char *dir = tmp_dir(), *path = path_in(dir, "w.tif");
  void *img = make_image(AERT_PIX_U8, 30, 20, 3, 1);
  cr_assert_eq(aert_tiff_write(path, 30, 20, 3, AERT_PIX_U8, img, NULL, NULL), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  char *err = read_error((read_call){&r, 25, 0, 6, 4, 0, 3, 3, 0});
  cr_assert(strstr(err, "window of 6 x 4 pixels at 25,0 is not inside its 30 x 20"), "%s", err);
  read_error((read_call){&r, -1, 0, 4, 4, 0, 3, 3, 0});
  read_error((read_call){&r, 0, 17, 4, 4, 0, 3, 3, 0});
  read_error((read_call){&r, 0, 0, 0, 4, 0, 3, 3, 0});
  read_error((read_call){&r, 2147483647, 0, 2, 4, 0, 3, 3, 0});
  err = read_error((read_call){&r, 0, 0, 4, 4, 2, 2, 3, 0});
  cr_assert(strstr(err, "2 bands from band 2 asked for, it has 3"), "%s", err);
  read_error((read_call){&r, 0, 0, 4, 4, -1, 2, 3, 0});
  err = read_error((read_call){&r, 0, 0, 4, 4, 0, 3, 3, 1});
  cr_assert(strstr(err, "do not fit"), "%s", err);
  check_windows(&r, AERT_PIX_U8, img, 0, "after refusals");
  aert_raster_close(&r);
  free(img), free(path);
}

typedef struct {
  const char *path;
  const void *img;
  aert_tiff_layout l;
  aert_pixel t;
} write_call;

static int write_it(void *ctx) {
  write_call *c = ctx;
  return aert_tiff_write(c->path, 24, 16, 2, c->t, c->img, NULL, &c->l);
}

/* A failed write leaves an existing file as it was, and no temporary file behind. */
Test(tiff, failed_writes_leave_the_old_file) {
  char *dir = tmp_dir(), *path = path_in(dir, "keep.tif"), *tmp = path_in(dir, "keep.tif.tmp");
  void *img = make_image(AERT_PIX_F32, 24, 16, 2, 1);
  cr_assert_eq(aert_tiff_write(path, 24, 16, 2, AERT_PIX_F32, img, NULL, NULL), 0);
  struct stat before, after;
  cr_assert(stat(path, &before) == 0);
  write_call bad[] = {
    {path, img, {.compression = COMPRESSION_JPEG}, AERT_PIX_F32},   /* libtiff refuses */
    {path, img, {.compression = 12345}, AERT_PIX_F32},
    {path, img, {.tile = 20}, AERT_PIX_F32},
    {"/nonexistent/dir/x.tif", img, {0}, AERT_PIX_F32},
  };
  for (int i = 0; i < 4; i++) {
    int rc;
    char *err = run_capturing_stderr(write_it, &bad[i], &rc);
    cr_assert_eq(rc, -1, "case %d", i);
    cr_assert(strstr(err, bad[i].path) && strncmp(err, "aec: ", 5) == 0, "%s", err);
    cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
    free(err);
  }
  cr_assert(stat(path, &after) == 0 && after.st_size == before.st_size &&
            after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  cr_assert(access(tmp, F_OK) != 0, "no temporary file is left behind");
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  check_windows(&r, AERT_PIX_F32, img, 0, "kept");
  aert_raster_close(&r);
  free(img), free(path), free(tmp);
}

/* ---- cloud-optimised GeoTIFFs (cog.c) -------------------------------------------------- */

/* A class map of w x h written row block by row block reads back exactly, with its NoData
 * value, palette and georeferencing; edge tiles and odd sizes included. */
static void cog_round_trip(int w, int h, int step, int bigtiff) {
  char *dir = tmp_dir(), *path = path_in(dir, "map.tif");
  unsigned char *img = malloc((size_t)w * h);
  cr_assert(img);
  for (long i = 0; i < (long)w * h; i++)
    img[i] = (unsigned char)(i % 7 == 3 ? 15 : 1 + (i * 2654435761u >> 7) % 6);
  static uint16_t map[3 * 256];
  map[1] = 65535;
  aert_georef geo = {.has_tiepoint = 1, .has_scale = 1, .tiepoint = {0, 0, 0, 500000, 4100000, 0},
                     .scale = {2, 2, 0}};
  aert_cog_info in = {.width = w, .height = h, .bands = 1, .type = AERT_PIX_U8, .geo = &geo,
                      .nodata = "15", .nodata_value = 15, .colormap = map, .categorical = 1,
                      .bigtiff = bigtiff};
  aert_cog *c = aert_cog_open(path, &in);
  cr_assert(c);
  for (int y = 0; y < h; y += step)
    cr_assert_eq(aert_cog_rows(c, img + (size_t)y * w, h - y < step ? h - y : step), 0);
  cr_assert_eq(aert_cog_close(c), 0);
  aert_raster r;
  cr_assert_eq(aert_raster_open(&r, path), 0);
  cr_assert(r.width == w && r.height == h && r.tiled && r.chunk_w == 256 && r.paletted);
  cr_assert(r.has_nodata && r.nodata == 15);
  cr_assert(r.geo.tiepoint[3] == 500000 && r.geo.scale[0] == 2);
  float *px = malloc(sizeof(float) * w * h);
  cr_assert(px);
  cr_assert_eq(aert_raster_read(&r, 0, 0, w, h, 0, 1, px, 1, 0), 0);
  for (long i = 0; i < (long)w * h; i++)
    cr_assert_eq(px[i], img[i], "pixel %ld of %dx%d", i, w, h);
  aert_raster_close(&r);
  free(px), free(img), free(path);
}

Test(cog, class_map_round_trip) {
  cog_round_trip(600, 300, 48, 0);
  cog_round_trip(256, 256, 256, 0);
  cog_round_trip(17, 1000, 5, 0);
  cog_round_trip(600, 300, 100, 1);   /* BigTIFF: 8-byte offsets and counts */
}

Test(cog, rows_must_add_up) {
  char *dir = tmp_dir(), *path = path_in(dir, "short.tif");
  aert_cog_info in = {.width = 40, .height = 30, .bands = 2, .type = AERT_PIX_F32};
  float rows[2 * 40 * 30] = {0};
  aert_cog *c = aert_cog_open(path, &in);
  cr_assert(c);
  cr_assert_eq(aert_cog_rows(c, rows, 29), 0);
  cr_assert_neq(aert_cog_close(c), 0, "a short image was written");
  cr_assert_neq(access(path, F_OK), 0, "a short image left a file");
  c = aert_cog_open(path, &in);
  cr_assert_neq(aert_cog_rows(c, rows, 31), 0, "more rows than the image has");
  aert_cog_abort(c);
  free(path);
}

Test(cog, georef_compare_names_both_values) {
  uint16_t k18[] = {1, 1, 0, 1, 3072, 0, 1, 26918}, k17[] = {1, 1, 0, 1, 3072, 0, 1, 26917};
  aert_georef a = {.has_tiepoint = 1, .has_scale = 1, .tiepoint = {0, 0, 0, 400000, 4200000, 0},
                   .scale = {1, 1, 0}, .n_keys = 8, .keys = k18};
  aert_georef b = a;
  char why[256];
  cr_assert_eq(aert_georef_compare(&a, &b, why, sizeof why), 0);
  b.keys = k17;
  cr_assert_eq(aert_georef_compare(&a, &b, why, sizeof why), 1);
  cr_assert(strstr(why, "EPSG:26918") && strstr(why, "EPSG:26917"), "%s", why);
  b.keys = k18, b.tiepoint[3] = 400001;
  cr_assert_eq(aert_georef_compare(&a, &b, why, sizeof why), 1);
  cr_assert(strstr(why, "400000.000000") && strstr(why, "400001.000000"), "%s", why);
  b.tiepoint[3] = 400000, b.has_scale = 0;
  cr_assert_eq(aert_georef_compare(&a, &b, why, sizeof why), 1);
}
