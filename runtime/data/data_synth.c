/* data_synth.c - the synthetic land-cover source: GeoTIFF tiles that synth.c draws and writes
 * into the data folder when its split is missing, then read as the GeoTIFF source reads any
 * tiles (data_geo.c). */
#include <stdlib.h>
#include "aert_internal.h"

static int load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds) {
  char *path = aert_tiles_folder(m, dir, train);
  if (!path)
    return -1;
  int rc = 0;
  if (aert_tiles_leader() && !aert_is_folder(path))   /* rank 0 writes */
    rc = aert_synth_write_split(m, dir);
  free(path);
  return rc == 0 ? aert_tiles_load(m, dir, train, limit, ds) : -1;
}

const aert_source aert_synthetic_source = {.load = load, .split = aert_tiles_split,
                                           .fill = aert_tiles_fill, .free = aert_tiles_close};
