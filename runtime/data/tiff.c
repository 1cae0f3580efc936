/* tiff.c - GeoTIFF rasters through libtiff. The reader takes any layout libtiff decodes and
 * turns a window of bands into floats, decoding only the strips or tiles it touches and
 * keeping the last one per plane; the writer writes strips or tiles to path.tmp and renames
 * it over path when complete. libtiff's messages are caught per handle, never printed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>
#include "aert_internal.h"

enum { GEO_SCALE = 33550, GEO_TIEPOINT = 33922, GEO_KEYS = 34735, GEO_DOUBLES = 34736,
       GEO_ASCII = 34737 };

/* Decoded strips or tiles held at once by one raster (all planes together). */
#define MAX_CHUNK_BYTES (1L << 30)

static const int pixel_bytes[] = {1, 2, 2, 4, 4, 4, 8};

/* ---- libtiff's messages, the GeoTIFF tags, options every handle is opened with ---- */

/* What libtiff said during this thread's current operation, joined by "; ". */
static __thread char tiff_msg[512];

static void note(TIFF *tif, const char *fmt, va_list ap) {
  size_t n = strlen(tiff_msg);
  if (n + 16 >= sizeof tiff_msg)
    return;
  if (n)
    memcpy(tiff_msg + n, "; ", 3), n += 2;
  vsnprintf(tiff_msg + n, sizeof tiff_msg - n, fmt, ap);
  const char *name = tif ? TIFFFileName(tif) : NULL;   /* we name the file ourselves */
  size_t k = name ? strlen(name) : 0;
  if (k && strncmp(tiff_msg + n, name, k) == 0 && strncmp(tiff_msg + n + k, ": ", 2) == 0)
    memmove(tiff_msg + n, tiff_msg + n + k + 2, strlen(tiff_msg + n + k + 2) + 1);
}

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  if (!strstr(fmt, "TIFF_SETGET_UNDEFINED"))   /* an unknown tag skipped: only a warning */
    note(tif, fmt, ap);
  return 1;
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  return 1;   /* unknown tags, nonstandard tile sizes ...: nothing a user must act on */
}

/* The few messages libtiff sends without a handle (codec set-up) still go nowhere else. */
static void on_global_error(const char *module, const char *fmt, va_list ap) {
  if (!strstr(fmt, "TIFF_SETGET_UNDEFINED"))
    note(NULL, fmt, ap);
}

static void on_global_warning(const char *module, const char *fmt, va_list ap) {}

static const char *reason(void) {
  return tiff_msg[0] ? tiff_msg : "libtiff gives no reason";
}

static const TIFFFieldInfo geo_fields[] = {
  {GEO_SCALE, -1, -1, TIFF_DOUBLE, FIELD_CUSTOM, 1, 1, "ModelPixelScaleTag"},
  {GEO_TIEPOINT, -1, -1, TIFF_DOUBLE, FIELD_CUSTOM, 1, 1, "ModelTiepointTag"},
  {GEO_KEYS, -1, -1, TIFF_SHORT, FIELD_CUSTOM, 1, 1, "GeoKeyDirectoryTag"},
  {GEO_DOUBLES, -1, -1, TIFF_DOUBLE, FIELD_CUSTOM, 1, 1, "GeoDoubleParamsTag"},
  {GEO_ASCII, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, "GeoAsciiParamsTag"},
  {TIFFTAG_GDAL_NODATA, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, "GDALNoDataTag"},
};

static TIFFExtendProc parent_extender;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static void add_geo_fields(TIFF *tif) {
  TIFFMergeFieldInfo(tif, geo_fields, sizeof geo_fields / sizeof geo_fields[0]);
  if (parent_extender)
    parent_extender(tif);
}

static void setup(void) {
  parent_extender = TIFFSetTagExtender(add_geo_fields);
  TIFFSetErrorHandler(on_global_error);
  TIFFSetWarningHandler(on_global_warning);
}

/* Options for one open: handlers of our own, and a cap on what libtiff allocates. */
static TIFFOpenOptions *open_options(void) {
  pthread_once(&setup_once, setup);
  tiff_msg[0] = '\0';
  TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
  if (!o)
    return aert_error("out of memory opening a TIFF"), NULL;
  TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, NULL);
  TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, NULL);
  TIFFOpenOptionsSetMaxSingleMemAlloc(o, MAX_CHUNK_BYTES);
  return o;
}

/* ---- georeferencing ------------------------------------------------------------- */

void aert_georef_free(aert_georef *g) {
  free(g->keys);
  free(g->doubles);
  free(g->ascii);
  memset(g, 0, sizeof *g);
}

/* An array-valued tag of the given type, with its count whichever width libtiff keeps. */
static void *get_array(TIFF *tif, uint32_t tag, TIFFDataType type, uint32_t *n) {
  const TIFFField *f = TIFFFindField(tif, tag, TIFF_ANY);
  void *p = NULL;
  *n = 0;
  if (!f || TIFFFieldDataType(f) != type || !TIFFFieldPassCount(f))
    return NULL;
  if (TIFFFieldReadCount(f) == TIFF_VARIABLE2) {
    uint32_t c;
    if (TIFFGetField(tif, tag, &c, &p))
      *n = c;
  } else {
    uint16_t c;
    if (TIFFGetField(tif, tag, &c, &p))
      *n = c;
  }
  return *n ? p : NULL;
}

static int read_georef(TIFF *tif, aert_georef *g, const char *path) {
  uint32_t n;
  double *d = get_array(tif, GEO_SCALE, TIFF_DOUBLE, &n);
  if (d && n >= 2) {
    g->has_scale = 1;
    memcpy(g->scale, d, sizeof(double) * (n < 3 ? n : 3));
  }
  d = get_array(tif, GEO_TIEPOINT, TIFF_DOUBLE, &n);
  if (d && n >= 6) {
    g->has_tiepoint = 1;
    memcpy(g->tiepoint, d, sizeof g->tiepoint);
  }
  uint16_t *k = get_array(tif, GEO_KEYS, TIFF_SHORT, &n);
  if (k) {
    if (!(g->keys = aert_alloc(sizeof(uint16_t) * n, path)))
      return -1;
    memcpy(g->keys, k, sizeof(uint16_t) * n);
    g->n_keys = (int)n;
  }
  d = get_array(tif, GEO_DOUBLES, TIFF_DOUBLE, &n);
  if (d) {
    if (!(g->doubles = aert_alloc(sizeof(double) * n, path)))
      return -1;
    memcpy(g->doubles, d, sizeof(double) * n);
    g->n_doubles = (int)n;
  }
  const TIFFField *f = TIFFFindField(tif, GEO_ASCII, TIFF_ANY);
  char *s = NULL;
  if (f && TIFFFieldDataType(f) == TIFF_ASCII && !TIFFFieldPassCount(f) &&
      TIFFGetField(tif, GEO_ASCII, &s) && s && !(g->ascii = strdup(s)))
    return aert_error("out of memory reading '%s'", path), -1;
  return 0;
}

/* The GDAL_NODATA tag (42113): text such as "15", "-9999" or "nan", known to libtiff or not. */
static void read_nodata(TIFF *tif, aert_raster *r) {
  const TIFFField *f = TIFFFindField(tif, TIFFTAG_GDAL_NODATA, TIFF_ANY);
  char *s = NULL, text[64];
  uint32_t n = 0;
  if (!f || TIFFFieldDataType(f) != TIFF_ASCII)
    return;
  if (!TIFFFieldPassCount(f))
    TIFFGetField(tif, TIFFTAG_GDAL_NODATA, &s), n = s ? (uint32_t)strlen(s) : 0;
  else if (TIFFFieldReadCount(f) == TIFF_VARIABLE2)
    TIFFGetField(tif, TIFFTAG_GDAL_NODATA, &n, &s);
  else {
    uint16_t c = 0;
    TIFFGetField(tif, TIFFTAG_GDAL_NODATA, &c, &s);
    n = c;
  }
  if (!s || n == 0)
    return;
  snprintf(text, sizeof text, "%.*s", (int)(n < sizeof text ? n : sizeof text - 1), s);
  char *end;
  double v = strtod(text, &end);
  while (*end == ' ' || *end == '\n')
    end++;
  if (end != text && !*end)
    r->has_nodata = 1, r->nodata = v;
}

static int write_georef(TIFF *tif, const aert_georef *g) {
  if (g->n_keys > 65535 || g->n_doubles > 65535) {
    snprintf(tiff_msg, sizeof tiff_msg, "%d GeoKeys and %d GeoDoubles are more than a TIFF "
             "holds", g->n_keys, g->n_doubles);
    return 0;
  }
  return (!g->has_scale || TIFFSetField(tif, GEO_SCALE, 3, g->scale)) &&
         (!g->has_tiepoint || TIFFSetField(tif, GEO_TIEPOINT, 6, g->tiepoint)) &&
         (g->n_keys <= 0 || !g->keys || TIFFSetField(tif, GEO_KEYS, g->n_keys, g->keys)) &&
         (g->n_doubles <= 0 || !g->doubles ||
          TIFFSetField(tif, GEO_DOUBLES, g->n_doubles, g->doubles)) &&
         (!g->ascii || TIFFSetField(tif, GEO_ASCII, g->ascii));
}

/* The EPSG code of a's CRS (projected, else geographic), 0 when it has none or its own. */
static int epsg_code(const aert_georef *g) {
  int code = 0;
  for (int i = 4; g->keys && i + 3 < g->n_keys; i += 4)
    if ((g->keys[i] == 3072 || (g->keys[i] == 2048 && !code)) && g->keys[i + 1] == 0 &&
        g->keys[i + 3] > 0 && g->keys[i + 3] < 32767)
      code = g->keys[i + 3];
  return code;
}

static void describe_crs(const aert_georef *g, char *s, size_t n) {
  int code = epsg_code(g);
  if (code)
    snprintf(s, n, "EPSG:%d", code);
  else
    snprintf(s, n, g->n_keys ? "a CRS of its own (no EPSG code)" : "no CRS");
}

static int same_crs(const aert_georef *a, const aert_georef *b) {
  if (epsg_code(a) || epsg_code(b))
    return epsg_code(a) == epsg_code(b);
  return a->n_keys == b->n_keys && a->n_doubles == b->n_doubles &&
         (!a->n_keys || !memcmp(a->keys, b->keys, sizeof(uint16_t) * a->n_keys)) &&
         (!a->n_doubles || !memcmp(a->doubles, b->doubles, sizeof(double) * a->n_doubles));
}

/* Origin x, y and pixel width, height as GDAL prints them (height negative for north up). */
static void geotransform(const aert_georef *g, double t[4]) {
  t[0] = g->tiepoint[3] - g->tiepoint[0] * g->scale[0];
  t[1] = g->tiepoint[4] + g->tiepoint[1] * g->scale[1];
  t[2] = g->scale[0], t[3] = -g->scale[1];
}

static int near(double a, double b) {
  return fabs(a - b) <= 1e-9 * (fabs(a) > fabs(b) ? fabs(a) : fabs(b)) + 1e-12;
}

int aert_georef_compare(const aert_georef *a, const aert_georef *b, char *why, size_t n) {
  char ca[64], cb[64];
  if (!same_crs(a, b)) {
    describe_crs(a, ca, sizeof ca), describe_crs(b, cb, sizeof cb);
    snprintf(why, n, "the CRS is %s in one and %s in the other", ca, cb);
    return 1;
  }
  int ga = a->has_tiepoint && a->has_scale, gb = b->has_tiepoint && b->has_scale;
  double ta[4] = {0}, tb[4] = {0};
  if (ga)
    geotransform(a, ta);
  if (gb)
    geotransform(b, tb);
  if (ga != gb || (ga && !(near(ta[0], tb[0]) && near(ta[1], tb[1]) && near(ta[2], tb[2]) &&
                           near(ta[3], tb[3])))) {
    snprintf(why, n, "the origin and pixel size are %s in one and %s in the other",
             ga ? "" : "missing", gb ? "" : "missing");
    if (ga && gb)
      snprintf(why, n, "the origin and pixel size are (%.6f, %.6f) %g x %g in one and "
               "(%.6f, %.6f) %g x %g in the other", ta[0], ta[1], ta[2], ta[3], tb[0], tb[1],
               tb[2], tb[3]);
    return 1;
  }
  return 0;
}

/* ---- opening: what the file holds, and whether this reader takes it ------------------ */

static int pixel_type(uint16_t format, uint16_t bits, aert_pixel *t) {
  if ((format == SAMPLEFORMAT_UINT || format == SAMPLEFORMAT_VOID) && bits == 8)
    *t = AERT_PIX_U8;
  else if ((format == SAMPLEFORMAT_UINT || format == SAMPLEFORMAT_VOID) && bits == 16)
    *t = AERT_PIX_U16;
  else if ((format == SAMPLEFORMAT_UINT || format == SAMPLEFORMAT_VOID) && bits == 32)
    *t = AERT_PIX_U32;
  else if (format == SAMPLEFORMAT_INT && bits == 16)
    *t = AERT_PIX_I16;
  else if (format == SAMPLEFORMAT_INT && bits == 32)
    *t = AERT_PIX_I32;
  else if (format == SAMPLEFORMAT_IEEEFP && bits == 32)
    *t = AERT_PIX_F32;
  else if (format == SAMPLEFORMAT_IEEEFP && bits == 64)
    *t = AERT_PIX_F64;
  else
    return -1;
  return 0;
}

static const char *format_name(uint16_t f) {
  return f == SAMPLEFORMAT_INT ? "signed" : f == SAMPLEFORMAT_IEEEFP ? "floating-point"
       : f == SAMPLEFORMAT_UINT || f == SAMPLEFORMAT_VOID ? "unsigned" : "complex or unknown";
}

/* Fills r from an open handle, or says why not; the caller closes tif on failure. */
static int describe(aert_raster *r, TIFF *tif, const char *path) {
  uint32_t w = 0, h = 0, depth = 1, tw = 0, th = 0, rps = 0;
  uint16_t spp = 1, bits = 1, format = SAMPLEFORMAT_UINT, config = PLANARCONFIG_CONTIG;
  uint16_t comp = COMPRESSION_NONE, photo = PHOTOMETRIC_MINISBLACK;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
    return aert_error("'%s' is not a valid TIFF: it has no image size", path), -1;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &config);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_IMAGEDEPTH, &depth);
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo);
  if (w == 0 || h == 0 || w > INT_MAX || h > INT_MAX || spp == 0 || depth != 1)
    return aert_error("'%s': an image of %u x %u pixels, %u bands and depth %u is not supported",
                      path, w, h, spp, depth), -1;
  if (bits == 1 && !(r->is_mask && spp == 1))
    return aert_error("'%s': 1-bit (bilevel) images are not supported (bands of 8 to 64-bit "
                      "numbers are, and 1-bit masks)", path), -1;
  if (photo == PHOTOMETRIC_PALETTE && spp != 1)
    return aert_error("'%s': a palette image of %u bands is not supported (one band of indices "
                      "is)", path, spp), -1;
  r->paletted = photo == PHOTOMETRIC_PALETTE;   /* read as the indices themselves */
  r->packed_row = bits == 1 ? 1 : 0;           /* set to bytes per row below */
  if (bits == 1)
    r->type = AERT_PIX_U8;   /* a mask: each bit widened to a byte, 0 or 1 */
  else if (pixel_type(format, bits, &r->type) != 0)
    return aert_error("'%s': %u-bit %s samples are not supported (8-bit unsigned, 16 or 32-bit "
                      "integer and 32 or 64-bit float are)", path, bits, format_name(format)), -1;
  if (photo == PHOTOMETRIC_LOGL || photo == PHOTOMETRIC_LOGLUV)
    return aert_error("'%s': SGI LogLuv images are not supported", path), -1;
  if (!TIFFIsCODECConfigured(comp))
    return aert_error("'%s': compression %u is not one this libtiff decodes", path, comp), -1;
  if (photo == PHOTOMETRIC_YCBCR) {
    uint16_t sx = 1, sy = 1;
    TIFFGetFieldDefaulted(tif, TIFFTAG_YCBCRSUBSAMPLING, &sx, &sy);
    if (comp == COMPRESSION_JPEG) {
      if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
        return aert_error("'%s': cannot decode its JPEG YCbCr as RGB: %s", path, reason()), -1;
    } else if (sx != 1 || sy != 1)
      return aert_error("'%s': subsampled YCbCr without JPEG compression is not supported", path), -1;
  }
  r->width = (int)w, r->height = (int)h, r->bands = spp;
  r->planar = config == PLANARCONFIG_SEPARATE;
  r->tiled = TIFFIsTiled(tif);
  if (r->tiled) {
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
  } else {
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    tw = w, th = rps < h ? rps : h;
  }
  if (tw == 0 || th == 0 || tw > INT_MAX || th > INT_MAX)
    return aert_error("'%s' is corrupt: %s of %u x %u pixels", path,
                      r->tiled ? "tiles" : "strips", tw, th), -1;
  r->chunk_w = (int)tw, r->chunk_h = (int)th;
  uint64_t per_pixel = (uint64_t)(r->planar ? 1 : spp) * pixel_bytes[r->type];
  uint64_t pixels = (uint64_t)tw * th, slots = r->planar ? spp : 1;   /* < 2^62 */
  if (pixels > MAX_CHUNK_BYTES / per_pixel / slots)
    return aert_error("'%s': its %s of %u x %u pixels are too large to decode (%.0f MiB); "
                      "re-tile it (gdal_translate -co TILED=YES)", path,
                      r->tiled ? "tiles" : "strips", tw, th,
                      (double)pixels * per_pixel * slots / (1 << 20)), -1;
  uint64_t bytes = pixels * per_pixel;
  r->chunk_bytes = (long)bytes;
  if (r->packed_row)
    r->packed_row = (int)((tw + 7) / 8), bytes = (uint64_t)r->packed_row * th;
  uint64_t theirs = r->tiled ? TIFFTileSize64(tif) : TIFFStripSize64(tif);
  uint64_t across = r->tiled ? ((uint64_t)w + tw - 1) / tw : 1, down = ((uint64_t)h + th - 1) / th;
  uint64_t count = r->tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
  if (theirs != bytes || count != across * down * slots)
    return aert_error("'%s' is corrupt or of a layout this reader does not know: %llu %s of "
                      "%llu bytes, expected %llu of %llu", path, (unsigned long long)count,
                      r->tiled ? "tiles" : "strips", (unsigned long long)theirs,
                      (unsigned long long)(across * down * slots), (unsigned long long)bytes), -1;
  read_nodata(tif, r);
  return read_georef(tif, &r->geo, path);
}

static int finish_open(aert_raster *r, TIFF *tif, const char *path) {
  int is_mask = r->is_mask;
  memset(r, 0, sizeof *r);
  r->is_mask = is_mask;
  r->tif = tif;
  r->chunk_id = -1;
  if (!(r->path = strdup(path)))
    aert_error("out of memory opening '%s'", path);
  if (!r->path || describe(r, tif, path) != 0) {
    aert_raster_close(r);
    return -1;
  }
  return 0;
}

/* A TIFF held in memory (the fuzzer's input): libtiff maps it as if it were a file. */
typedef struct {
  const unsigned char *data;
  toff_t size, pos;
} mem_file;

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n) {
  mem_file *m = h;
  if (n <= 0 || m->pos >= m->size)
    return 0;
  toff_t k = m->size - m->pos < (toff_t)n ? m->size - m->pos : (toff_t)n;
  memcpy(buf, m->data + m->pos, k);
  m->pos += k;
  return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n) {
  return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  mem_file *m = h;
  m->pos = (whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0) + off;
  return m->pos;
}

static int mem_close(thandle_t h) {
  free(h);
  return 0;
}

static toff_t mem_size(thandle_t h) {
  return ((mem_file *)h)->size;
}

static int mem_map(thandle_t h, void **base, toff_t *size) {
  mem_file *m = h;
  *base = (void *)m->data, *size = m->size;
  return 1;
}

static void mem_unmap(thandle_t h, void *base, toff_t size) {}

/* A handle on the file at path, or on the TIFF in data[0..size) when data is not NULL
 * (libtiff reads it as if it were a file); NULL after saying why. */
static TIFF *open_tiff(const char *path, const void *data, size_t size) {
  mem_file *m = data ? aert_alloc(sizeof *m, path) : NULL;
  int fd = data ? -1 : open(path, O_RDONLY | O_CLOEXEC);
  if (data ? !m : fd < 0)
    return data ? NULL : (aert_error("cannot read '%s': %s", path, strerror(errno)), NULL);
  TIFFOpenOptions *o = open_options();
  TIFF *tif = NULL;
  if (o && m) {
    m->data = data, m->size = size;
    tif = TIFFClientOpenExt(path, "r", m, mem_read, mem_write, mem_seek, mem_close, mem_size,
                            mem_map, mem_unmap, o);
  } else if (o)
    tif = TIFFFdOpenExt(fd, path, "r", o);
  if (o)
    TIFFOpenOptionsFree(o);
  if (!tif) {
    free(m);
    if (fd >= 0)
      close(fd);
    if (o)
      aert_error("'%s' is not a TIFF file libtiff can read: %s", path, reason());
  }
  return tif;
}

/* GDAL keeps a dataset's mask as a later directory of the same size marked as a mask
 * (NewSubfileType 4): opened on a second handle as r->mask, or none. */
static int open_mask(aert_raster *r, const char *path, const void *data, size_t size) {
  if (TIFFNumberOfDirectories(r->tif) < 2)   /* one image, no mask: no second handle */
    return 0;
  TIFF *tif = open_tiff(path, data, size);
  if (!tif)
    return -1;
  for (int dir = 1; dir < 64 && TIFFReadDirectory(tif); dir++) {
    uint32_t type = 0, w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &type);
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    if (type != FILETYPE_MASK || (int)w != r->width || (int)h != r->height)
      continue;
    if (!(r->mask = aert_alloc(sizeof *r->mask, path)))
      break;
    r->mask->is_mask = 1;
    if (finish_open(r->mask, tif, path) != 0) {
      free(r->mask);
      r->mask = NULL;
      return aert_error("'%s': its mask (directory %d) cannot be read", path, dir), -1;
    }
    return 0;
  }
  TIFFClose(tif);
  return 0;
}

static int open_raster(aert_raster *r, const char *path, const void *data, size_t size) {
  memset(r, 0, sizeof *r);
  r->chunk_id = -1;
  TIFF *tif = open_tiff(path, data, size);
  if (!tif || finish_open(r, tif, path) != 0)
    return -1;
  if (open_mask(r, path, data, size) != 0) {
    aert_raster_close(r);
    return -1;
  }
  return 0;
}

int aert_raster_open(aert_raster *r, const char *path) {
  return open_raster(r, path, NULL, 0);
}

/* Opens the TIFF in data[0..size), which must outlive the raster; name is for messages. */
int aert_raster_open_mem(aert_raster *r, const char *name, const void *data, size_t size) {
  return open_raster(r, name, data, size);
}

void aert_raster_close(aert_raster *r) {
  if (r->mask) {
    aert_raster_close(r->mask);
    free(r->mask);
  }
  if (r->tif)
    TIFFClose(r->tif);
  free(r->path);
  free(r->chunk);
  aert_georef_free(&r->geo);
  memset(r, 0, sizeof *r);
  r->chunk_id = -1;
}

/* ---- reading windows ------------------------------------------------------------ */

/* r->chunk holds r->slots slots of chunk_bytes per plane (one plane for chunky files),
 * then the strip/tile number each slot holds (-1: none). */
static long chunks_per_plane(const aert_raster *r) {
  return (((long)r->width + r->chunk_w - 1) / r->chunk_w) * (((long)r->height + r->chunk_h - 1) / r->chunk_h);
}

static long *slot_ids(aert_raster *r) {
  long slots = (r->planar ? r->bands : 1) * r->slots;
  return (long *)(r->chunk + (slots * r->chunk_bytes + 7) / 8 * 8);
}

static int alloc_slots(aert_raster *r) {
  long planes = r->planar ? r->bands : 1, per = chunks_per_plane(r);
  r->slots = r->cache_bytes / (planes * r->chunk_bytes);
  r->slots = r->slots < 1 ? 1 : r->slots > per ? per : r->slots;
  long slots = planes * r->slots;
  if (!(r->chunk = aert_alloc((size_t)(slots * r->chunk_bytes + 7) / 8 * 8 +
                              sizeof(long) * (size_t)slots, r->path)))
    return -1;
  long *ids = slot_ids(r);
  for (long i = 0; i < slots; i++)
    ids[i] = -1;
  return 0;
}

void aert_raster_set_cache(aert_raster *r, long bytes) {
  free(r->chunk);
  r->chunk = NULL;
  r->cache_bytes = bytes;
  if (r->mask)
    aert_raster_set_cache(r->mask, bytes);
}

/* 1-bit rows (bytes_per_row apart, first pixel in the high bit) widened in place to one
 * byte per pixel, w apart: from the last pixel back, no byte is written before it is read. */
static void widen_bits(unsigned char *buf, int w, int bytes_per_row, int rows) {
  for (long y = rows - 1; y >= 0; y--)
    for (long x = w - 1; x >= 0; x--)
      buf[y * w + x] = (buf[y * bytes_per_row + x / 8] >> (7 - x % 8)) & 1;
}

/* The decoded strip or tile at chunk column cx, row cy of plane p (0 when chunky). */
static const unsigned char *chunk_at(aert_raster *r, int cx, int cy, int p) {
  TIFF *tif = r->tif;
  long across = ((long)r->width + r->chunk_w - 1) / r->chunk_w;
  long k = (long)cy * across + cx;   /* the chunk's number within its plane */
  long id = (r->planar ? p : 0) * chunks_per_plane(r) + k;
  long slot = (r->planar ? p : 0) * r->slots + k % r->slots;
  unsigned char *buf = r->chunk + slot * r->chunk_bytes;
  long *ids = slot_ids(r);
  if (ids[slot] == id)
    return buf;
  ids[slot] = -1;
  tiff_msg[0] = '\0';
  long rows = r->height - (long)cy * r->chunk_h < r->chunk_h ? r->height - (long)cy * r->chunk_h
                                                               : r->chunk_h;
  long row_bytes = r->packed_row ? r->packed_row : r->chunk_bytes / r->chunk_h;
  long need = row_bytes * (r->tiled ? r->chunk_h : rows);
  tmsize_t got = r->tiled ? TIFFReadEncodedTile(tif, (uint32_t)id, buf, r->chunk_bytes)
                          : TIFFReadEncodedStrip(tif, (uint32_t)id, buf, r->chunk_bytes);
  if (got < need) {
    char why[96];
    uint16_t comp = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
    const TIFFCodec *codec = TIFFFindCODEC(comp);
    struct stat sb;
    uint64_t at = TIFFGetStrileOffset(tif, (uint32_t)id), len = TIFFGetStrileByteCount(tif, (uint32_t)id);
    if (got < 0 && TIFFFileno(tif) >= 0 && fstat(TIFFFileno(tif), &sb) == 0 && at + len > (uint64_t)sb.st_size)
      snprintf(why, sizeof why, "the file ends at byte %lld, its data lies at bytes %llu-%llu",
               (long long)sb.st_size, (unsigned long long)at, (unsigned long long)(at + len));
    else if (got < 0)
      snprintf(why, sizeof why, "libtiff's %s decoder gives no reason", codec ? codec->name : "");
    else
      snprintf(why, sizeof why, "%ld of %ld bytes decoded", (long)got, need);
    aert_error("'%s' is truncated or corrupt: %s %ld of %ld cannot be decoded (%s)", r->path,
               r->tiled ? "tile" : "strip", id, (r->planar ? r->bands : 1) * chunks_per_plane(r),
               tiff_msg[0] && !strstr(why, "file ends") ? tiff_msg : why);
    return NULL;
  }
  if (r->packed_row)
    widen_bits(buf, r->chunk_w, r->packed_row, r->tiled ? r->chunk_h : (int)rows);
  ids[slot] = r->chunk_id = id;
  return buf;
}

/* n pixels of nb samples each, stride samples apart in src, to floats stride dst_c apart. */
#define CONVERT(T)                                                    \
  do {                                                                \
    const T *s = (const T *)src;                                      \
    for (int i = 0; i < n; i++, s += stride, dst += dst_c)            \
      for (int b = 0; b < nb; b++)                                    \
        dst[b] = (float)s[b];                                         \
  } while (0)

static void convert(aert_pixel t, const unsigned char *src, int stride, int n, int nb,
                    float *dst, int dst_c) {
  switch (t) {
  case AERT_PIX_U8: CONVERT(uint8_t); break;
  case AERT_PIX_U16: CONVERT(uint16_t); break;
  case AERT_PIX_I16: CONVERT(int16_t); break;
  case AERT_PIX_U32: CONVERT(uint32_t); break;
  case AERT_PIX_I32: CONVERT(int32_t); break;
  case AERT_PIX_F32: CONVERT(float); break;
  case AERT_PIX_F64: CONVERT(double); break;
  }
}

static int check_window(const aert_raster *r, int x0, int y0, int w, int h, int band0,
                        int nbands, const float *dst, int dst_c, int dst_off) {
  if (!r->tif)
    return aert_error("reading a raster that is not open"), -1;
  if (w <= 0 || h <= 0 || x0 < 0 || y0 < 0 || (long)x0 + w > r->width ||
      (long)y0 + h > r->height)
    return aert_error("'%s': the window of %d x %d pixels at %d,%d is not inside its %d x %d "
                      "pixels", r->path, w, h, x0, y0, r->width, r->height), -1;
  if (nbands <= 0 || band0 < 0 || (long)band0 + nbands > r->bands)
    return aert_error("'%s': %d bands from band %d asked for, it has %d", r->path, nbands, band0,
                      r->bands), -1;
  if (!dst || dst_off < 0 || (long)dst_off + nbands > dst_c)
    return aert_error("'%s': %d bands do not fit at channel %d of a %d-channel image", r->path,
                      nbands, dst_off, dst_c), -1;
  return 0;
}

int aert_raster_read(aert_raster *r, int x0, int y0, int w, int h, int band0, int nbands,
                     float *dst, int dst_c, int dst_off) {
  if (check_window(r, x0, y0, w, h, band0, nbands, dst, dst_c, dst_off) != 0)
    return -1;
  if (!r->chunk && alloc_slots(r) != 0)
    return -1;
  int cw = r->chunk_w, ch = r->chunk_h, bytes = pixel_bytes[r->type];
  int stride = r->planar ? 1 : r->bands;
  int p0 = r->planar ? band0 : 0, p1 = r->planar ? band0 + nbands : 1;
  for (int cy = y0 / ch; cy <= (y0 + h - 1) / ch; cy++)
    for (int cx = x0 / cw; cx <= (x0 + w - 1) / cw; cx++)
      for (int p = p0; p < p1; p++) {
        const unsigned char *c = chunk_at(r, cx, cy, p);
        if (!c)
          return -1;
        long top = (long)cy * ch, left = (long)cx * cw;
        long ya = top > y0 ? top : y0, yb = top + ch < y0 + h ? top + ch : y0 + h;
        long xa = left > x0 ? left : x0, xb = left + cw < x0 + w ? left + cw : x0 + w;
        for (long y = ya; y < yb; y++) {
          const unsigned char *s =
            c + (((y - top) * cw + xa - left) * stride + (r->planar ? 0 : band0)) * bytes;
          float *d = dst + ((y - y0) * w + xa - x0) * dst_c + dst_off + (p - p0);
          convert(r->type, s, stride, (int)(xb - xa), r->planar ? 1 : nbands, d, dst_c);
        }
      }
  return 0;
}

/* ---- writing -------------------------------------------------------------------- */

/* Copies the part of the HWC image under one strip or tile (plane p, or all bands when
 * chunky) into buf, zeros beyond the image's edge. */
static void fill_chunk(unsigned char *buf, const unsigned char *hwc, int width, int height,
                       int bands, int bytes, int left, int top, int cw, int ch, int p) {
  int per = p < 0 ? bands : 1;
  memset(buf, 0, (size_t)cw * ch * per * bytes);
  int n = width - left < cw ? width - left : cw;
  for (int y = top; y < top + ch && y < height; y++) {
    const unsigned char *s = hwc + ((size_t)y * width + left) * bands * bytes;
    unsigned char *d = buf + (size_t)(y - top) * cw * per * bytes;
    if (p < 0)
      memcpy(d, s, (size_t)n * bands * bytes);
    else
      for (int x = 0; x < n; x++)
        memcpy(d + (size_t)x * bytes, s + ((size_t)x * bands + p) * bytes, (size_t)bytes);
  }
}

static int set_layout(TIFF *tif, int width, int height, int bands, aert_pixel type,
                      const aert_tiff_layout *l, int rps, int comp) {
  static const uint16_t formats[] = {SAMPLEFORMAT_UINT, SAMPLEFORMAT_UINT, SAMPLEFORMAT_INT,
                                     SAMPLEFORMAT_UINT, SAMPLEFORMAT_INT, SAMPLEFORMAT_IEEEFP,
                                     SAMPLEFORMAT_IEEEFP};
  int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width) &&
           TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height) &&
           TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, bands) &&
           TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8 * pixel_bytes[type]) &&
           TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, formats[type]) &&
           TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) &&
           TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
                        l->planar ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG) &&
           TIFFSetField(tif, TIFFTAG_COMPRESSION, comp);
  if (ok && bands > 1) {   /* bands beyond the grey one are "unspecified" extra samples */
    uint16_t *extra = calloc((size_t)bands - 1, sizeof(uint16_t));
    ok = extra && TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, bands - 1, extra);
    free(extra);
  }
  if (ok && l->tile > 0)
    ok = TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t)l->tile) &&
         TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t)l->tile);
  else if (ok)
    ok = TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, (uint32_t)rps);
  return ok;
}

static int write_chunks(TIFF *tif, const unsigned char *hwc, int width, int height, int bands,
                        int bytes, const aert_tiff_layout *l, int rps) {
  int cw = l->tile > 0 ? l->tile : width, ch = l->tile > 0 ? l->tile : rps;
  int planes = l->planar ? bands : 1, per = l->planar ? 1 : bands;
  size_t size = (size_t)cw * ch * per * bytes;
  unsigned char *buf = malloc(size);
  if (!buf) {
    snprintf(tiff_msg, sizeof tiff_msg, "out of memory for a strip or tile of %zu bytes", size);
    return -1;
  }
  int ok = 1;
  for (int p = 0; ok && p < planes; p++)
    for (int top = 0; ok && top < height; top += ch)
      for (int left = 0; ok && left < width; left += cw) {
        fill_chunk(buf, hwc, width, height, bands, bytes, left, top, cw, ch, l->planar ? p : -1);
        if (l->tile > 0)
          ok = TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, left, top, 0, p), buf, size) >= 0;
        else {
          int rows = height - top < ch ? height - top : ch;
          ok = TIFFWriteEncodedStrip(tif, TIFFComputeStrip(tif, top, p), buf,
                                     (tmsize_t)cw * rows * per * bytes) >= 0;
        }
      }
  free(buf);
  return ok ? 0 : -1;
}

int aert_tiff_write(const char *path, int width, int height, int bands, aert_pixel type,
                    const void *hwc, const aert_georef *geo, const aert_tiff_layout *layout) {
  aert_tiff_layout l = {0};
  if (layout)
    l = *layout;
  int rps = l.rows_per_strip > 0 ? l.rows_per_strip : 16;
  rps = rps < height ? rps : height;
  int comp = l.compression ? l.compression : COMPRESSION_ADOBE_DEFLATE;
  if (width <= 0 || height <= 0 || bands <= 0 || bands > 65535 || (unsigned)type > AERT_PIX_F64
      || !hwc)
    return aert_error("cannot write '%s': %d x %d pixels of %d bands of pixel type %d are not an "
                      "image", path, width, height, bands, (int)type), -1;
  if (l.tile < 0 || l.tile % 16 != 0 || l.rows_per_strip < 0)
    return aert_error("cannot write '%s': tiles must be a multiple of 16 pixels and rows per "
                      "strip positive (tiles %d, rows %d)", path, l.tile, l.rows_per_strip), -1;
  if (!TIFFIsCODECConfigured((uint16_t)comp))
    return aert_error("cannot write '%s': compression %d is not one this libtiff encodes", path,
                      comp), -1;
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  int fd = dup(fileno(a.f));
  TIFFOpenOptions *o = fd >= 0 ? open_options() : NULL;
  TIFF *tif = o ? TIFFFdOpenExt(fd, path, l.bigtiff ? "w8" : "w", o) : NULL;
  int said = fd >= 0 && !o;   /* open_options has reported running out of memory */
  if (o)
    TIFFOpenOptionsFree(o);
  int ok = tif && set_layout(tif, width, height, bands, type, &l, rps, comp) &&
           (!geo || write_georef(tif, geo)) &&
           (!l.nodata || TIFFSetField(tif, TIFFTAG_GDAL_NODATA, l.nodata));
  if (ok && write_chunks(tif, hwc, width, height, bands, pixel_bytes[type], &l, rps) != 0)
    ok = 0;
  if (ok && !TIFFFlush(tif))
    ok = 0;
  if (!ok && !said)
    aert_error("cannot write '%s': %s", path, fd < 0 ? strerror(errno) : reason());
  if (tif)
    TIFFClose(tif);
  else if (fd >= 0)
    close(fd);
  if (!ok) {
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}
