/* data_png.c - the PNG source: one folder of PNG images, each its own target, and the image
 * pairs of two folders that the IDX source hands over: every *.png of the input folder,
 * sorted by name, with the file of the same name in the target folder. Grey, grey+alpha,
 * RGB, RGBA and palette images of 1 to 16 bits become the model's channels (RGB to grey by
 * luminance, grey to RGB by copies, alpha dropped unless the model takes it); 16-bit samples
 * are divided by 257, so every value is on the 0..255 scale of an IDX byte before scaling. */
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "aert_internal.h"

/* A half-loaded set given back: what this source allocated (aert_data_free's job for a
 * loaded one, which lives above the sources). */
static void drop(aert_dataset *ds) {
  free(ds->x);
  free(ds->y);
  memset(ds, 0, sizeof *ds);
}

int aert_png_pairs(const char *inputs, const char *targets) {
  return aert_is_folder(inputs) || aert_is_folder(targets);
}

/* ---- listing and pairing ------------------------------------------------------------ */
typedef struct {
  char **name;
  long n;
} listing;

static void listing_free(listing *l) {
  for (long i = 0; i < l->n; i++)
    free(l->name[i]);
  free(l->name);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names *.png (any case) in dir, sorted; hidden files are left out. */
static int list_pngs(const char *dir, listing *l) {
  memset(l, 0, sizeof *l);
  DIR *d = opendir(dir);
  if (!d)
    return aert_error("cannot read the image folder '%s': %s", dir, strerror(errno)), -1;
  long cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.' || n < 5 || strcasecmp(e->d_name + n - 4, ".png"))
      continue;
    if (l->n == cap) {
      cap = cap ? 2 * cap : 256;
      char **grown = realloc(l->name, sizeof(char *) * cap);
      if (!grown)
        return closedir(d), aert_error("out of memory listing '%s'", dir), -1;
      l->name = grown;
    }
    if (!(l->name[l->n++] = strdup(e->d_name)))
      return closedir(d), aert_error("out of memory listing '%s'", dir), -1;
  }
  closedir(d);
  if (l->n == 0)
    return aert_error("no PNG images (*.png) in the folder '%s'", dir), -1;
  qsort(l->name, (size_t)l->n, sizeof(char *), cmp_name);
  return 0;
}

/* Both sorted listings must hold the same names; the first one without a partner is named. */
static int pair_names(const listing *in, const char *idir, const listing *tg, const char *tdir) {
  for (long i = 0, j = 0; i < in->n || j < tg->n; i++, j++) {
    int c = i == in->n ? 1 : j == tg->n ? -1 : strcmp(in->name[i], tg->name[j]);
    if (c < 0)
      return aert_error("'%s/%s' has no partner: the target folder '%s' has no '%s'", idir,
                        in->name[i], tdir, in->name[i]), -1;
    if (c > 0)
      return aert_error("'%s/%s' has no partner: the input folder '%s' has no '%s'", tdir,
                        tg->name[j], idir, tg->name[j]), -1;
  }
  return 0;
}

/* ---- decoding one PNG --------------------------------------------------------------- */
typedef struct {
  const unsigned char *buf;
  size_t len, pos;
  int truncated;
  char why[160];
  unsigned char *pixels;
  png_bytep *rows;
} source;

static void on_error(png_structp png, png_const_charp msg) {
  source *s = png_get_error_ptr(png);
  snprintf(s->why, sizeof s->why, "%s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {}

static void read_mem(png_structp png, png_bytep out, size_t n) {
  source *s = png_get_io_ptr(png);
  if (n > s->len - s->pos) {
    s->truncated = 1;
    png_error(png, "truncated");
  }
  memcpy(out, s->buf + s->pos, n);
  s->pos += n;
}

static const char *channel_names(int c) {
  return c == 1 ? "grey" : c == 2 ? "grey+alpha" : c == 3 ? "RGB" : "RGBA";
}

/* Decoded samples to the model's c channels on the 0..255 scale, then x * scale + offset as
 * data_idx.c does with IDX bytes. Grey from RGB is (299 R + 587 G + 114 B) / 1000 (Rec. 601),
 * exact for grey pixels; 16-bit values are divided by 257 (exact for v * 257). */
static void to_floats(const aert_model *m, const source *s, int h, int w, int pc, int deep,
                      int c, float *dst) {
  float scale = m->data.scale, offset = m->data.offset;
  if (scale == 0.0f && offset == 0.0f)
    scale = 1.0f / 255.0f;
  int bytes = deep ? 2 : 1, colour = pc >= 3 ? 3 : 1;
  double unit = deep ? 257.0 : 1.0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const unsigned char *p = s->rows[y] + (size_t)x * pc * bytes;
      long v[4];
      for (int k = 0; k < pc; k++)
        v[k] = deep ? (long)p[2 * k] << 8 | p[2 * k + 1] : p[k];
      float *d = dst + ((long)y * w + x) * c;
      for (int k = 0; k < c; k++) {
        double val;
        if (c == 1 && colour == 3)
          val = (double)(299 * v[0] + 587 * v[1] + 114 * v[2]) / (1000.0 * unit);
        else
          val = (double)v[c == pc ? k : colour == 1 ? 0 : k] / unit;
        d[k] = (float)val * scale + offset;
      }
    }
}

/* Reads path, an h x w image, into dst as c channels; what names the role in messages. */
static int read_png(const aert_model *m, const char *path, int h, int w, int c,
                    const char *what, float *dst) {
  unsigned char *buf;
  size_t len;
  if (aert_read_file(path, &buf, &len) != 0)
    return -1;
  source s = {.buf = buf, .len = len};
  if (len < 8 || png_sig_cmp(buf, 0, 8)) {
    if (len < 8 && !png_sig_cmp(buf, 0, len))
      aert_error("'%s' is truncated: %zu bytes, not even a PNG signature", path, len);
    else
      aert_error("'%s' is not a PNG file (it does not start with the PNG signature)", path);
    free(buf);
    return -1;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  int rc = -1;
  if (!info) {
    aert_error("out of memory reading '%s'", path);
    goto out;
  }
  if (setjmp(png_jmpbuf(png))) {
    if (s.truncated)
      aert_error("'%s' is truncated: its %zu bytes end inside the PNG data", path, len);
    else
      aert_error("'%s' is not a readable PNG: %s", path, s.why);
    goto out;
  }
  png_set_read_fn(png, &s, read_mem);
  png_read_info(png, info);
  png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
  if (pw != (png_uint_32)w || ph != (png_uint_32)h) {
    aert_error("'%s' is %u x %u pixels (width x height) but the model's %s is %d x %d: resize "
               "it (ImageMagick: convert IN -resize %dx%d! OUT) or cut it into %d x %d tiles", path,
               (unsigned)pw, (unsigned)ph, what, w, h, w, h, w, h);
    goto out;
  }
  int type = png_get_color_type(png, info);
  if (type == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int pc = png_get_channels(png, info), deep = png_get_bit_depth(png, info) == 16;
  if (pc != c && !((c == 1 || c == 3) && pc >= 1 && pc <= 4)) {
    aert_error("'%s' has %d channel(s) (%s) but the model's %s has %d: other kinds of image "
               "convert only to 1 (grey) or 3 (RGB)", path, pc, channel_names(pc), what, c);
    goto out;
  }
  size_t stride = png_get_rowbytes(png, info);
  s.pixels = malloc(stride * (size_t)h);
  s.rows = malloc(sizeof(png_bytep) * (size_t)h);
  if (!s.pixels || !s.rows) {
    aert_error("out of memory reading '%s'", path);
    goto out;
  }
  for (int y = 0; y < h; y++)
    s.rows[y] = s.pixels + (size_t)y * stride;
  png_read_image(png, s.rows);
  png_read_end(png, NULL);
  to_floats(m, &s, h, w, pc, deep, c, dst);
  rc = 0;
out:
  png_destroy_read_struct(&png, info ? &info : NULL, NULL);
  free(s.pixels);
  free(s.rows);
  free(buf);
  return rc;
}

int aert_png_read(const aert_model *m, const char *path, int h, int w, int c, const char *what,
                  float *dst) {
  return read_png(m, path, h, w, c, what, dst);
}

int aert_png_list(const char *dir, char ***names, long *n) {
  listing l;
  if (list_pngs(dir, &l) != 0)
    return listing_free(&l), -1;
  *names = l.name, *n = l.n;
  return 0;
}

/* ---- the data set ------------------------------------------------------------------- */
/* The n images of l from the first-th on. */
static int read_all(const aert_model *m, const char *dir, const listing *l, long first, long n, int rank,
                    const int *shape, long size, const char *what, float *dst) {
  int h, w, c;
  aert_image_hwc(rank, shape, size, &h, &w, &c);
  for (long i = 0; i < n; i++) {
    char *path = aert_join(dir, l->name[first + i]);
    int rc = path ? read_png(m, path, h, w, c, what, dst + i * size) : -1;
    free(path);
    if (rc != 0)
      return -1;
  }
  return 0;
}

int aert_png_pairs_load(const aert_model *m, const char *inputs, const char *targets, long limit,
                        aert_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (m->target_kind != AERT_TARGET_IMAGE)
    return aert_error("'%s': folders of PNG images need a model whose target is an image",
                      inputs), -1;
  if (!aert_is_folder(inputs) || !aert_is_folder(targets)) {
    const char *dir = aert_is_folder(inputs) ? inputs : targets;
    const char *other = dir == inputs ? targets : inputs;
    struct stat st;
    const char *why = stat(other, &st) != 0 ? strerror(errno) : "not a folder";
    return aert_error("'%s' is a folder but '%s' is not (%s): image pairs come from two folders "
                      "of PNG images or two IDX files", dir, other, why), -1;
  }
  listing in, tg;
  if (list_pngs(inputs, &in) != 0)
    return listing_free(&in), -1;
  int rc = -1;
  if (list_pngs(targets, &tg) != 0 || pair_names(&in, inputs, &tg, targets) != 0)
    goto out;
  ds->owner = 1;
  ds->in_size = m->in_size;
  ds->target_size = m->target_size;
  ds->n = limit > 0 && limit < in.n ? limit : in.n;
  ds->x = aert_alloc(sizeof(float) * ds->n * ds->in_size, inputs);
  ds->y = ds->x ? aert_alloc(sizeof(float) * ds->n * ds->target_size, targets) : NULL;
  if (ds->y && read_all(m, inputs, &in, 0, ds->n, m->in_rank, m->in_shape, m->in_size, "input",
                        ds->x) == 0)
    rc = read_all(m, targets, &tg, 0, ds->n, m->target_rank, m->target_shape, m->target_size,
                  "target", ds->y);
out:
  if (rc != 0)
    drop(ds);
  listing_free(&in);
  listing_free(&tg);
  return rc;
}

/* ---- one folder of images, each its own target ---------------------------------------- */
/* Training: every *.png of DIR/train, or of DIR itself when the spec names no train folder.
 * Test: those of DIR/test, or without a test folder the images training held out for
 * validation, the last `validation` fraction by name (Keras's validation_split of one
 * folder). */
static int load_images(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  const char *sub = train ? m->data.train_images : m->data.test_images;
  char *folder = sub ? aert_join(dir, sub) : strdup(dir);
  if (!folder)
    return aert_error("out of memory reading the image folder '%s'", dir), -1;
  listing l;
  int rc = -1;
  if (list_pngs(folder, &l) != 0)
    goto out;
  long first = 0, n = l.n;
  if (!train && !sub) {
    n = (long)(l.n * m->data.validation);
    first = l.n - n;
    if (n == 0) {
      aert_error("'%s' gives no test images: the spec names no test folder (test = \"...\") and validation "
                 "%g holds out none of its %ld images", folder, m->data.validation, l.n);
      goto out;
    }
  }
  ds->owner = 1;
  ds->in_size = m->in_size;
  ds->target_size = m->target_size;
  ds->n = limit > 0 && limit < n ? limit : n;
  ds->x = aert_alloc(sizeof(float) * ds->n * ds->in_size, folder);
  if (ds->x)
    rc = read_all(m, folder, &l, first, ds->n, m->in_rank, m->in_shape, m->in_size, "input", ds->x);
out:
  if (rc != 0)
    drop(ds);
  listing_free(&l);
  free(folder);
  return rc;
}

const aert_source aert_png_source = {.load = load_images};
