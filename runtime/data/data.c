/* data.c - the data sources behind one interface: the table that picks a model's source by
 * its data kind, and what every dataset shares whatever its source: the data folder, the
 * held-out validation split, a deterministic per-epoch shuffle and fixed-size batches (a
 * partial batch is padded with copies of its last example). Adding a source is a file that
 * defines an aert_source and a row here. */
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "aert_internal.h"

static const aert_source *const sources[] = {
  [AERT_DATA_IDX] = &aert_idx_source,
  [AERT_DATA_IMAGE_PAIRS] = &aert_idx_source,   /* two IDX files, or two folders of PNGs */
  [AERT_DATA_IMAGES] = &aert_png_source,
  [AERT_DATA_GEOTIFF] = &aert_geotiff_source,
  [AERT_DATA_SYNTHETIC_LANDCOVER] = &aert_synthetic_source,
};

/* The spec's data folder, relative to the folder aec built in, is found from the trainer's
 * own place: aec build writes bin/<model> there, so it is the parent of the program's folder.
 * Then the trainer means the same data wherever it is started. --data is taken as given. */
const char *aert_data_dir(const aert_model *m, const char *override) {
  static char resolved[PATH_MAX + 64];
  const char *dir = m->data.dir ? m->data.dir : AERT_DEFAULT_DATA_DIR;
  char exe[PATH_MAX];
  ssize_t n = override || dir[0] == '/' ? -1 : readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (override || n <= 0)
    return override ? override : dir;
  exe[n] = 0;
  snprintf(resolved, sizeof resolved, "%s/%s", dirname(dirname(exe)), dir);
  return resolved;
}

int aert_data_load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds) {
  unsigned kind = m->data.kind;
  const aert_source *source = kind < sizeof sources / sizeof *sources ? sources[kind] : NULL;
  memset(ds, 0, sizeof *ds);
  if (!source)
    return aert_error("model '%s' has data kind %u, which no data source reads", m->name, kind), -1;
  if (source->load(m, dir, train, limit, ds) != 0)
    return -1;
  ds->source = source;
  return 0;
}

void aert_data_split(aert_dataset *all, double validation, aert_dataset *train,
                     aert_dataset *val) {
  if (all->source && all->source->split)
    return all->source->split(all, validation, train, val);
  long nval = (long)(all->n * validation);
  *train = *all;
  *val = *all;
  train->owner = val->owner = 0;
  train->n = all->n - nval;
  val->n = nval;
  val->x = all->x + train->n * all->in_size;
  val->bytes = all->bytes ? all->bytes + train->n * all->in_size : NULL;
  val->y = all->y ? all->y + train->n * all->target_size : NULL;
  val->label = all->label ? all->label + train->n : NULL;
}

void aert_data_free(aert_dataset *ds) {
  if (ds->owner) {
    if (ds->source && ds->source->free)
      ds->source->free(ds);
    free(ds->x);
    free(ds->y);
    free(ds->label);
    free(ds->bytes);
  }
  memset(ds, 0, sizeof *ds);
}

/* Fisher-Yates from the identity, drawn from (seed, epoch): any epoch's order can be
 * rebuilt on resume without replaying earlier ones. */
void aert_shuffle(long *order, long n, uint64_t seed, long epoch) {
  uint64_t s = aert_hash64(seed ^ aert_hash64(0x5348554646ULL + (uint64_t)epoch));
  for (long i = 0; i < n; i++)
    order[i] = i;
  for (long i = n - 1; i > 0; i--) {
    long j = (long)(aert_hash64(s ^ aert_hash64((uint64_t)i)) % (uint64_t)(i + 1));
    long t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

int aert_batch_fill(const aert_model *m, const aert_dataset *ds, const long *order, long start,
                    float *x, float *y) {
  return aert_batch_fill_drawn(m, ds, order, start, 0, x, y);
}

int aert_batch_fill_drawn(const aert_model *m, const aert_dataset *ds, const long *order,
                          long start, uint64_t draw, float *x, float *y) {
  if (ds->source && ds->source->fill)
    return ds->source->fill(m, ds, order, start, draw, x, y);
  long real = ds->n - start < m->batch ? ds->n - start : m->batch;
  for (long b = 0; b < m->batch; b++) {
    long k = start + (b < real ? b : real - 1);
    long i = order ? order[k] : k;
    memcpy(x + b * ds->in_size, ds->x + i * ds->in_size, sizeof(float) * ds->in_size);
    if (y && ds->y)
      memcpy(y + b * ds->target_size, ds->y + i * ds->target_size,
             sizeof(float) * ds->target_size);
  }
  return (int)real;
}
