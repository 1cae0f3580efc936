/* data_idx.c - the IDX source: datasets from IDX files (Fashion-MNIST layout, gzip or raw),
 * checked against the model's shapes, held in memory. Image pairs come from two IDX files,
 * or from two folders of PNG images, which it hands to data_png.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "aert_internal.h"

/* Reads the whole (decompressed) stream; gzread passes raw files through unchanged. */
static int read_gz(const char *path, unsigned char **out, size_t *len) {
  gzFile g = gzopen(path, "rb");
  if (!g) {
    aert_error("cannot read '%s': %s", path, errno ? strerror(errno) : "out of memory");
    return -1;
  }
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = malloc(cap);
  for (;;) {
    if (!buf)
      return gzclose(g), aert_error("out of memory reading '%s'", path), -1;
    int got = gzread(g, buf + n, (unsigned)(cap - n));
    if (got < 0) {
      int err;
      aert_error("cannot read '%s': %s", path, gzerror(g, &err));
      free(buf);
      gzclose(g);
      return -1;
    }
    n += (size_t)got;
    if (got == 0)
      break;
    if (n == cap) {
      cap *= 2;
      unsigned char *grown = realloc(buf, cap);
      if (!grown)
        free(buf);
      buf = grown;
    }
  }
  gzclose(g);
  *out = buf;
  *len = n;
  return 0;
}

static long be32(const unsigned char *p) {
  return (long)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int check_header(const char *path, const unsigned char *b, size_t len, aert_idx *idx) {
  if (len < 4)
    return aert_error("'%s' is truncated: %zu bytes, too short for an IDX header", path, len), -1;
  if (b[0] != 0 || b[1] != 0 || b[3] < 1 || b[3] > 4)
    return aert_error("'%s' has the wrong magic 0x%08lx: not an IDX file", path, be32(b)), -1;
  if (b[2] != 0x08)
    return aert_error("'%s' holds IDX data type 0x%02x; only unsigned bytes (0x08) are supported",
                      path, b[2]), -1;
  idx->ndim = b[3];
  size_t head = 4 + 4 * (size_t)idx->ndim;
  if (len < head)
    return aert_error("'%s' is truncated inside its IDX header", path), -1;
  idx->item = 1;
  for (int i = 0; i < idx->ndim; i++) {
    unsigned long d = be32(b + 4 + 4 * i);
    if (d > (1UL << 30) || (i > 0 && (unsigned long)idx->item * d > (1UL << 32)))
      return aert_error("'%s' declares a dimension of %lu, more than any data file holds", path, d), -1;
    idx->dims[i] = (int)d;
    if (i > 0)
      idx->item *= idx->dims[i];
  }
  idx->count = idx->dims[0];
  size_t want = head + (size_t)idx->count * (size_t)idx->item;
  if (len < want)
    return aert_error("'%s' is truncated: the header promises %ld items (%zu bytes) but the "
                      "file holds %zu bytes", path, idx->count, want, len), -1;
  if (len > want)
    return aert_error("'%s' has %zu bytes after the %ld items its header promises", path,
                      len - want, idx->count), -1;
  return 0;
}

int aert_idx_read(const char *path, aert_idx *idx) {
  unsigned char *buf;
  size_t len;
  memset(idx, 0, sizeof *idx);
  if (read_gz(path, &buf, &len) != 0)
    return -1;
  if (check_header(path, buf, len, idx) != 0) {
    free(buf);
    return -1;
  }
  size_t head = 4 + 4 * (size_t)idx->ndim;
  memmove(buf, buf + head, len - head);
  idx->data = buf;
  return 0;
}

/* The images must match a per-example shape: HWC when rank 3, or just the element count. */
static int check_images(const char *path, const aert_idx *idx, int rank, const int *shape,
                        long size, const char *what) {
  int h = idx->ndim > 1 ? idx->dims[1] : 1, w = idx->ndim > 2 ? idx->dims[2] : 1;
  int c = idx->ndim > 3 ? idx->dims[3] : 1;
  int ok = idx->item == size;
  if (ok && rank == 3)
    ok = h == shape[0] && w == shape[1] && c == shape[2];
  if (ok)
    return 0;
  if (rank == 3)
    aert_error("'%s' holds %dx%dx%d images but the model expects %dx%dx%d %s", path, h, w, c,
               shape[0], shape[1], shape[2], what);
  else
    aert_error("'%s' holds images of %ld values but the model expects %ld %s", path, idx->item,
               size, what);
  return -1;
}

/* The class index of a label value, or -1 for the ignore label and unknown labels. */
static float class_index(const aert_model *m, int label) {
  if (label == m->ignore_label)
    return -1.0f;
  for (int c = 0; c < m->n_classes; c++)
    if (m->class_ids[c] == label)
      return (float)c;
  return -1.0f;
}

void aert_idx_norm(const aert_model *m, float *scale, float *offset) {
  *scale = m->data.scale;
  *offset = m->data.offset;
  if (*scale == 0.0f && *offset == 0.0f)
    *scale = 1.0f / 255.0f;
}

/* Rounded as a device rounds it (aert_mul_rn), so that a set normalised there is this one. */
static void to_floats(const aert_model *m, const unsigned char *src, long n, float *dst) {
  float scale, offset;
  aert_idx_norm(m, &scale, &offset);
  for (long i = 0; i < n; i++)
    dst[i] = aert_add_rn(aert_mul_rn((float)src[i], scale), offset);
}

static char *data_file(const aert_model *m, const char *dir, int train, int labels) {
  const char *name = train ? (labels ? m->data.train_labels : m->data.train_images)
                           : (labels ? m->data.test_labels : m->data.test_images);
  if (!name)
    name = train ? (labels ? "train-labels-idx1-ubyte.gz" : "train-images-idx3-ubyte.gz")
                 : (labels ? "t10k-labels-idx1-ubyte.gz" : "t10k-images-idx3-ubyte.gz");
  return aert_join(dir, name);
}

/* Second file: labels (class targets or just for the CSV), or target images (pairs). */
static int load_second(const aert_model *m, const char *path, const char *images_path,
                       long n, aert_dataset *ds) {
  aert_idx idx;
  int pairs = m->data.kind == AERT_DATA_IMAGE_PAIRS;
  if (aert_idx_read(path, &idx) != 0)
    return -1;
  int rc = -1;
  if (idx.count < n) {
    aert_error("'%s' has %ld entries but '%s' has %ld images", path, idx.count, images_path, n);
  } else if (pairs && m->target_kind == AERT_TARGET_IMAGE) {
    if (check_images(path, &idx, m->target_rank, m->target_shape, m->target_size,
                     "target images") == 0) {
      ds->y = aert_alloc(sizeof(float) * n * m->target_size, path);
      if (ds->y)
        to_floats(m, idx.data, n * m->target_size, ds->y), rc = 0;
    }
  } else if (idx.item != (m->target_kind == AERT_TARGET_CLASSES ? m->target_size : 1)) {
    aert_error("'%s' holds %ld values per example but the model's target has %ld", path,
               idx.item, m->target_kind == AERT_TARGET_CLASSES ? m->target_size : 1L);
  } else {
    ds->label = aert_alloc(sizeof(int) * n, path);
    if (m->target_kind == AERT_TARGET_CLASSES)
      ds->y = aert_alloc(sizeof(float) * n * m->target_size, path);
    if (ds->label && (ds->y || m->target_kind != AERT_TARGET_CLASSES)) {
      for (long i = 0; i < n; i++)
        ds->label[i] = idx.data[i * idx.item];
      for (long i = 0; ds->y && i < n * m->target_size; i++)
        ds->y[i] = class_index(m, idx.data[i]);
      rc = 0;
    }
  }
  free(idx.data);
  return rc;
}

/* Frees what a failed load had allocated. */
static void drop(aert_dataset *ds) {
  free(ds->x);
  free(ds->y);
  free(ds->label);
  free(ds->bytes);
  memset(ds, 0, sizeof *ds);
}

static int load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds) {
  char *ipath = data_file(m, dir, train, 0), *lpath = data_file(m, dir, train, 1);
  aert_idx idx;
  int rc = -1;
  if (ipath && lpath && m->data.kind == AERT_DATA_IMAGE_PAIRS && aert_png_pairs(ipath, lpath)) {
    rc = aert_png_pairs_load(m, ipath, lpath, limit, ds);
    goto out;
  }
  if (!ipath || !lpath || aert_idx_read(ipath, &idx) != 0)
    goto out;
  if (check_images(ipath, &idx, m->in_rank, m->in_shape, m->in_size, "inputs") == 0) {
    ds->owner = 1;
    ds->in_size = m->in_size;
    ds->target_size = m->target_size;
    ds->n = limit > 0 && limit < idx.count ? limit : idx.count;
    ds->x = aert_alloc(sizeof(float) * ds->n * ds->in_size, ipath);
    if (ds->x) {
      to_floats(m, idx.data, ds->n * ds->in_size, ds->x);
      rc = load_second(m, lpath, ipath, ds->n, ds);
    }
  }
  if (rc == 0 && m->data.kind == AERT_DATA_IDX)   /* the bytes stay, for a device to keep */
    ds->bytes = idx.data, idx.data = NULL;
  free(idx.data);
  if (rc != 0)
    drop(ds);
out:
  free(ipath);
  free(lpath);
  return rc;
}

int aert_device_set_of(const aert_model *m, const aert_dataset *ds, uint64_t seed,
                       aert_device_set *set) {
  int augment = aert_augment_active(&m->data);
  int map = m->target_kind == AERT_TARGET_CLASSES && m->target_rank >= 2;
  if (!ds->bytes || ds->tiles || (augment && map) || m->target_kind == AERT_TARGET_IMAGE)
    return 0;
  *set = (aert_device_set){.bytes = ds->bytes, .y = m->target_kind == AERT_TARGET_INPUT ? NULL : ds->y,
                           .n = ds->n, .in_size = ds->in_size, .target_size = ds->target_size,
                           .augment = augment, .seed = seed};
  aert_idx_norm(m, &set->scale, &set->offset);
  return m->target_kind == AERT_TARGET_INPUT || set->y != NULL;
}

const aert_source aert_idx_source = {.load = load};
