/* cog.c - Cloud-Optimised GeoTIFF written row by row in bounded memory: rows go into one
 * band of 256-row tiles per resolution level, each full band is deflated tile by tile into a
 * scratch file and halved into the next level; at the end the file is laid out as GDAL's COG
 * driver does (every IFD first, then the smallest overview's tiles, the full resolution last)
 * and the compressed tiles are copied into place. Memory: two bands of tiles per level. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "aert_internal.h"

enum { TILE = 256, MAX_LEVELS = 24, MAX_ENTRIES = 24 };

/* One resolution: rows waiting for their band of tiles, and where each tile went. */
typedef struct {
  int w, h, across, down;
  unsigned char *band;         /* TILE rows x w pixels */
  unsigned char *pending;      /* an even row waiting for its odd partner (halving) */
  int rows, done;              /* rows in band; rows of the level received */
  uint64_t *at, *size;         /* per tile, row-major: offset in scratch, deflated bytes */
} cog_level;

struct aert_cog {
  aert_cog_info info;
  char *path;
  int bps, pixel;              /* bytes per sample, per pixel */
  int n_levels;
  cog_level level[MAX_LEVELS];
  FILE *scratch;
  uint64_t scratch_end;
  unsigned char *tile, *packed;
  unsigned long packed_cap;
};

static int fail(aert_cog *c, const char *what) {
  return aert_error("cannot write '%s': %s", c->path, what), -1;
}

/* ---- levels: halving rows ----------------------------------------------------------- */
static void halve_u8_classes(const unsigned char *a, const unsigned char *b, int w, int nodata,
                             unsigned char *out) {
  for (int x = 0; x < (w + 1) / 2; x++) {
    int x1 = 2 * x + 1 < w ? 2 * x + 1 : 2 * x;
    unsigned char v[4] = {a[2 * x], a[x1], b[2 * x], b[x1]};
    int best = -1, best_n = 0;   /* the most frequent value; no data only when all are */
    for (int i = 0; i < 4; i++) {
      int n = 0;
      for (int j = 0; j < 4; j++)
        n += v[j] == v[i];
      if (v[i] != nodata && n > best_n)
        best = v[i], best_n = n;
    }
    out[x] = (unsigned char)(best < 0 ? v[0] : best);
  }
}

/* The mean of each 2x2 block, per band (probabilities). */
static void halve_mean(const aert_cog *c, const unsigned char *a, const unsigned char *b, int w,
                       unsigned char *out) {
  int nb = c->info.bands;
  for (int x = 0; x < (w + 1) / 2; x++) {
    int x1 = 2 * x + 1 < w ? 2 * x + 1 : 2 * x;
    for (int k = 0; k < nb; k++) {
      long i0 = (long)2 * x * nb + k, i1 = (long)x1 * nb + k;
      if (c->info.type == AERT_PIX_F32) {
        const float *fa = (const float *)a, *fb = (const float *)b;
        ((float *)out)[(long)x * nb + k] = (fa[i0] + fa[i1] + fb[i0] + fb[i1]) / 4;
      } else
        out[(long)x * nb + k] = (unsigned char)((a[i0] + a[i1] + b[i0] + b[i1] + 2) / 4);
    }
  }
}

static int add_row(aert_cog *c, int l, const unsigned char *row);

/* Deflates the band of tiles of level l into the scratch file. */
static int flush_band(aert_cog *c, int l) {
  cog_level *v = &c->level[l];
  int ty = (v->done - 1) / TILE;
  size_t row_bytes = (size_t)TILE * c->pixel;
  for (int tx = 0; tx < v->across; tx++) {
    int x0 = tx * TILE, n = v->w - x0 < TILE ? v->w - x0 : TILE;
    memset(c->tile, 0, row_bytes * TILE);
    for (int y = 0; y < v->rows; y++)
      memcpy(c->tile + y * row_bytes, v->band + ((size_t)y * v->w + x0) * c->pixel,
             (size_t)n * c->pixel);
    uLongf packed = c->packed_cap;
    if (compress2(c->packed, &packed, c->tile, row_bytes * TILE, 6) != Z_OK)
      return fail(c, "deflate failed");
    long k = (long)ty * v->across + tx;
    v->at[k] = c->scratch_end, v->size[k] = packed;
    if (fwrite(c->packed, 1, packed, c->scratch) != packed)
      return aert_error("cannot write the scratch file of '%s': %s", c->path, strerror(errno)), -1;
    c->scratch_end += packed;
  }
  v->rows = 0;
  return 0;
}

/* Row y of level l: into its band, and (paired with the row before) halved into level l+1. */
static int add_row(aert_cog *c, int l, const unsigned char *row) {
  cog_level *v = &c->level[l];
  size_t bytes = (size_t)v->w * c->pixel;
  memcpy(v->band + v->rows * bytes, row, bytes);
  v->rows++, v->done++;
  if ((v->rows == TILE || v->done == v->h) && flush_band(c, l) != 0)
    return -1;
  if (l + 1 >= c->n_levels)
    return 0;
  if (v->done % 2 == 1 && v->done < v->h) {
    memcpy(v->pending, row, bytes);
    return 0;
  }
  const unsigned char *a = v->done % 2 == 0 ? v->pending : row;
  unsigned char *half = c->level[l + 1].pending + (size_t)c->level[l + 1].w * c->pixel;
  if (c->info.categorical)
    halve_u8_classes(a, row, v->w, c->info.nodata_value, half);
  else
    halve_mean(c, a, row, v->w, half);
  return add_row(c, l + 1, half);
}

/* ---- opening, rows, closing ---------------------------------------------------------- */
void aert_cog_abort(aert_cog *c) {
  if (!c)
    return;
  for (int l = 0; l < c->n_levels; l++) {
    free(c->level[l].band);
    free(c->level[l].pending);
    free(c->level[l].at);
    free(c->level[l].size);
  }
  if (c->scratch)
    fclose(c->scratch);
  free(c->tile);
  free(c->packed);
  free(c->path);
  free(c);
}

static int open_scratch(aert_cog *c) {
  size_t n = strlen(c->path) + 16;
  char *name = malloc(n);
  if (!name)
    return fail(c, "out of memory");
  snprintf(name, n, "%s.tiles.tmp", c->path);
  c->scratch = fopen(name, "w+b");
  int rc = c->scratch ? 0 : (aert_error("cannot create '%s': %s", name, strerror(errno)), -1);
  if (rc == 0)
    unlink(name);   /* gone with the process, whatever happens */
  free(name);
  return rc;
}

aert_cog *aert_cog_open(const char *path, const aert_cog_info *info) {
  if (info->width <= 0 || info->height <= 0 || info->bands <= 0 || info->bands > 255 ||
      (info->type != AERT_PIX_U8 && info->type != AERT_PIX_F32) ||
      (info->categorical && (info->bands != 1 || info->type != AERT_PIX_U8)))
    return aert_error("cannot write '%s': a COG of %d x %d pixels and %d bands of this type is "
                      "not supported", path, info->width, info->height, info->bands), NULL;
  aert_cog *c = aert_alloc(sizeof *c, path);
  if (!c)
    return NULL;
  c->info = *info;
  c->path = strdup(path);
  c->bps = info->type == AERT_PIX_F32 ? 4 : 1;
  c->pixel = c->bps * info->bands;
  int w = info->width, h = info->height, rc = c->path ? 0 : -1;
  for (int l = 0; rc == 0 && l < MAX_LEVELS; l++) {   /* halve until one tile holds it all */
    cog_level *v = &c->level[c->n_levels++];
    v->w = w, v->h = h, v->across = (w + TILE - 1) / TILE, v->down = (h + TILE - 1) / TILE;
    long tiles = (long)v->across * v->down;
    v->band = aert_alloc((size_t)TILE * w * c->pixel, path);
    v->pending = aert_alloc((size_t)2 * w * c->pixel, path);
    v->at = aert_alloc(sizeof(uint64_t) * tiles, path);
    v->size = aert_alloc(sizeof(uint64_t) * tiles, path);
    rc = v->band && v->pending && v->at && v->size ? 0 : -1;
    if (w <= TILE && h <= TILE)
      break;
    w = (w + 1) / 2, h = (h + 1) / 2;
  }
  c->packed_cap = compressBound((uLong)TILE * TILE * c->pixel);
  c->tile = aert_alloc((size_t)TILE * TILE * c->pixel, path);
  c->packed = aert_alloc(c->packed_cap, path);
  if (rc != 0 || !c->tile || !c->packed || open_scratch(c) != 0) {
    aert_cog_abort(c);
    return NULL;
  }
  return c;
}

int aert_cog_rows(aert_cog *c, const void *rows, int n) {
  const unsigned char *p = rows;
  if (c->level[0].done + n > c->info.height)
    return fail(c, "more rows than the image has");
  for (int y = 0; y < n; y++)
    if (add_row(c, 0, p + (size_t)y * c->info.width * c->pixel) != 0)
      return -1;
  return 0;
}

/* ---- the file: header, IFDs with their values, then the tiles ------------------------ */
typedef struct {
  uint16_t tag, type;
  uint64_t count;
  const void *data;            /* count values of type; NULL: the tile offsets or sizes */
} ifd_entry;

enum { T_ASCII = 2, T_SHORT = 3, T_LONG = 4, T_DOUBLE = 12, T_LONG8 = 16 };

static int type_size(int type) {
  return type == T_ASCII ? 1 : type == T_SHORT ? 2 : type == T_LONG ? 4 : 8;
}

typedef struct {
  unsigned char *b;
  size_t n, cap;
  int big;                     /* BigTIFF: 8-byte offsets and counts */
} out_buf;

static int put(out_buf *o, uint64_t v, int bytes) {
  if (o->n + 8 > o->cap) {
    size_t cap = o->cap ? 2 * o->cap : 4096;
    unsigned char *b = realloc(o->b, cap);
    if (!b)
      return -1;
    o->b = b, o->cap = cap;
  }
  for (int i = 0; i < bytes; i++)   /* little-endian whatever the host */
    o->b[o->n++] = (unsigned char)(v >> (8 * i));
  return 0;
}

static int put_value(out_buf *o, int type, const void *data, uint64_t i) {
  switch (type) {
  case T_ASCII: return put(o, ((const unsigned char *)data)[i], 1);
  case T_SHORT: return put(o, ((const uint16_t *)data)[i], 2);
  case T_LONG: return put(o, ((const uint32_t *)data)[i], 4);
  default: {
    uint64_t v;
    memcpy(&v, (const char *)data + 8 * i, 8);
    return put(o, v, 8);
  }
  }
}

/* The entries of level l's IFD (tags ascending, as TIFF requires). */
static int level_entries(const aert_cog *c, int l, ifd_entry *e, uint16_t *shorts,
                         uint32_t *longs) {
  const aert_cog_info *in = &c->info;
  const cog_level *v = &c->level[l];
  int n = 0, nb = in->bands, palette = in->colormap && nb == 1;
  longs[0] = 1, longs[1] = (uint32_t)v->w, longs[2] = (uint32_t)v->h, longs[3] = TILE;
  shorts[0] = 8, shorts[1] = palette ? 3 : 1, shorts[2] = (uint16_t)nb, shorts[3] = 1;
  shorts[4] = (uint16_t)(8 * c->bps);
  shorts[5] = in->type == AERT_PIX_F32 ? 3 : 1;
  if (l > 0)
    e[n++] = (ifd_entry){254, T_LONG, 1, &longs[0]};       /* NewSubfileType: reduced */
  e[n++] = (ifd_entry){256, T_LONG, 1, &longs[1]};
  e[n++] = (ifd_entry){257, T_LONG, 1, &longs[2]};
  e[n++] = (ifd_entry){258, T_SHORT, (uint64_t)nb, NULL};   /* per band, below */
  e[n++] = (ifd_entry){259, T_SHORT, 1, &shorts[0]};       /* deflate */
  e[n++] = (ifd_entry){262, T_SHORT, 1, &shorts[1]};       /* palette or grey */
  e[n++] = (ifd_entry){277, T_SHORT, 1, &shorts[2]};
  e[n++] = (ifd_entry){284, T_SHORT, 1, &shorts[3]};       /* chunky */
  if (palette)
    e[n++] = (ifd_entry){320, T_SHORT, 3 * 256, in->colormap};
  e[n++] = (ifd_entry){322, T_LONG, 1, &longs[3]};
  e[n++] = (ifd_entry){323, T_LONG, 1, &longs[3]};
  e[n++] = (ifd_entry){324, T_LONG, (uint64_t)v->across * v->down, NULL};
  e[n++] = (ifd_entry){325, T_LONG, (uint64_t)v->across * v->down, NULL};
  if (nb > 1)
    e[n++] = (ifd_entry){338, T_SHORT, (uint64_t)nb - 1, NULL};
  e[n++] = (ifd_entry){339, T_SHORT, (uint64_t)nb, NULL};
  const aert_georef *g = in->geo;
  if (l == 0 && g && g->has_scale)
    e[n++] = (ifd_entry){33550, T_DOUBLE, 3, g->scale};
  if (l == 0 && g && g->has_tiepoint)
    e[n++] = (ifd_entry){33922, T_DOUBLE, 6, g->tiepoint};
  if (l == 0 && g && g->n_keys > 0 && g->keys)
    e[n++] = (ifd_entry){34735, T_SHORT, (uint64_t)g->n_keys, g->keys};
  if (l == 0 && g && g->n_doubles > 0 && g->doubles)
    e[n++] = (ifd_entry){34736, T_DOUBLE, (uint64_t)g->n_doubles, g->doubles};
  if (l == 0 && g && g->ascii)
    e[n++] = (ifd_entry){34737, T_ASCII, strlen(g->ascii) + 1, g->ascii};
  if (l == 0 && in->metadata)
    e[n++] = (ifd_entry){42112, T_ASCII, strlen(in->metadata) + 1, in->metadata};
  if (in->nodata)
    e[n++] = (ifd_entry){42113, T_ASCII, strlen(in->nodata) + 1, in->nodata};
  return n;
}

/* The value of one entry at index i: per-band shorts, tile offsets and sizes come from
 * the level; the rest from the entry's data. */
static int put_entry_value(out_buf *o, const aert_cog *c, int l, const ifd_entry *e,
                           const uint16_t *shorts, uint64_t data0, uint64_t i) {
  const cog_level *v = &c->level[l];
  int width = o->big ? 8 : 4;
  if (e->tag == 258 || e->tag == 339)
    return put(o, e->tag == 258 ? shorts[4] : shorts[5], 2);
  if (e->tag == 338)
    return put(o, 0, 2);   /* extra samples: unspecified */
  if (e->tag == 325)
    return put(o, v->size[i], width);
  if (e->tag == 324) {     /* where tile i lands: levels from the smallest, each row-major */
    uint64_t at = data0;
    for (int k = c->n_levels - 1; k > l; k--)
      for (long j = 0; j < (long)c->level[k].across * c->level[k].down; j++)
        at += c->level[k].size[j];
    for (uint64_t j = 0; j < i; j++)
      at += v->size[j];
    return put(o, at, width);
  }
  return put_value(o, e->type, e->data, i);
}

/* Lays out header and IFDs into o; the tile data starts at *data0 (written in a first
 * pass with data0 = 0 to learn the size, then again with the true value). */
static int lay_out(aert_cog *c, out_buf *o, uint64_t data0) {
  int big = o->big, width = big ? 8 : 4, rc = 0;
  o->n = 0;
  rc |= put(o, 0x4949, 2) | put(o, big ? 43 : 42, 2);
  if (big)
    rc |= put(o, 8, 2) | put(o, 0, 2);
  rc |= put(o, big ? 16 : 8, width);
  for (int l = 0; l < c->n_levels && rc == 0; l++) {
    ifd_entry e[MAX_ENTRIES];
    uint16_t shorts[8];
    uint32_t longs[4];
    int n = level_entries(c, l, e, shorts, longs);
    size_t ifd = o->n, ifd_bytes = (size_t)(big ? 8 : 2) + (size_t)n * (big ? 20 : 12) + width;
    size_t extra = ifd + ifd_bytes;   /* values too long for their entry follow the IFD */
    size_t extra_end = extra;
    for (int j = 0; j < n; j++) {
      uint64_t bytes = e[j].count * (uint64_t)(e[j].tag == 324 || e[j].tag == 325 ? width : type_size(e[j].type));
      if (bytes > (uint64_t)width)
        extra_end += (bytes + 1) & ~(uint64_t)1;
    }
    rc |= put(o, (uint64_t)n, big ? 8 : 2);
    size_t at = extra;
    for (int j = 0; j < n && rc == 0; j++) {
      int type = e[j].tag == 324 || e[j].tag == 325 ? (big ? T_LONG8 : T_LONG) : e[j].type;
      uint64_t bytes = e[j].count * (uint64_t)type_size(type);
      rc |= put(o, e[j].tag, 2) | put(o, (uint64_t)type, 2) | put(o, e[j].count, width);
      if (bytes <= (uint64_t)width) {
        size_t start = o->n;
        for (uint64_t i = 0; i < e[j].count && rc == 0; i++)
          rc |= put_entry_value(o, c, l, &e[j], shorts, data0, i);
        rc |= put(o, 0, (int)(width - (o->n - start)));
      } else {
        rc |= put(o, at, width);
        at += (bytes + 1) & ~(uint64_t)1;
      }
    }
    rc |= put(o, l + 1 < c->n_levels ? extra_end : 0, width);   /* the next IFD */
    for (int j = 0; j < n && rc == 0; j++) {
      int type = e[j].tag == 324 || e[j].tag == 325 ? (big ? T_LONG8 : T_LONG) : e[j].type;
      uint64_t bytes = e[j].count * (uint64_t)type_size(type);
      if (bytes <= (uint64_t)width)
        continue;
      for (uint64_t i = 0; i < e[j].count && rc == 0; i++)
        rc |= put_entry_value(o, c, l, &e[j], shorts, data0, i);
      if (bytes % 2)
        rc |= put(o, 0, 1);
    }
  }
  if (rc == 0 && o->n % 2)
    rc |= put(o, 0, 1);
  return rc ? fail(c, "out of memory laying out the TIFF directories") : 0;
}

/* Copies the tiles from the scratch file, the smallest level first. */
static int copy_tiles(aert_cog *c, FILE *f, const char *tmp) {
  for (int l = c->n_levels - 1; l >= 0; l--) {
    cog_level *v = &c->level[l];
    for (long j = 0; j < (long)v->across * v->down; j++) {
      if (fseeko(c->scratch, (off_t)v->at[j], SEEK_SET) != 0 ||
          fread(c->packed, 1, v->size[j], c->scratch) != v->size[j])
        return aert_error("cannot read back the scratch file of '%s': %s", c->path,
                          strerror(errno)), -1;
      if (aert_write(f, c->packed, v->size[j], tmp) != 0)
        return -1;
    }
  }
  return 0;
}

int aert_cog_close(aert_cog *c) {
  if (c->level[0].done != c->info.height) {
    int rc = fail(c, "the image ended early");
    aert_cog_abort(c);
    return rc;
  }
  out_buf o = {0};
  o.big = c->info.bigtiff || c->scratch_end > 0xF0000000u;   /* classic offsets stop at 4 GiB */
  int rc = lay_out(c, &o, 0);
  if (rc == 0)
    rc = lay_out(c, &o, o.n);
  aert_atomic a;
  if (rc == 0 && (rc = aert_atomic_open(&a, c->path)) == 0) {
    rc = aert_write(a.f, o.b, o.n, a.tmp) != 0 ? -1 : copy_tiles(c, a.f, a.tmp);
    if (rc != 0)
      aert_atomic_abort(&a);
    else
      rc = aert_atomic_commit(&a);
  }
  free(o.b);
  aert_cog_abort(c);
  return rc;
}
