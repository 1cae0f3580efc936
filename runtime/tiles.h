/* tiles.h - the GeoTIFF tile source's own structures, shared by its two halves: reading
 * tiles and patches (data_geo.c) and predicting over whole tiles and scenes
 * (predict_tiles.c). Nothing else includes it. */
#ifndef AERT_TILES_H
#define AERT_TILES_H

#include <pthread.h>
#include "aert_internal.h"

/* One entry of the spec's layers: "landsat-leaf-on:1-8" is bands 1..8 of that file. */
typedef struct {
  char name[128];
  int band0, nbands;   /* nbands 0: every band of the file */
} geo_layer;

/* The files of one tile that a reader keeps open, with the chunks they decoded. */
typedef struct {
  int tile;            /* -1: none */
  unsigned long used;  /* the reader's clock when last opened */
  aert_raster r[AERT_MAX_LAYERS + 1];   /* the layers, then the labels */
} geo_open;

/* A data thread's files (one reader per data thread): the tiles it read last stay open, up
 * to the tiles' open_max, so that patches drawn from them in any order neither reopen the
 * files nor decode a chunk twice; r is the layers of the tile opened last. */
#define AERT_OPEN_TILES 16
typedef struct {
  int tile;            /* the tile r belongs to, -1: none */
  aert_raster *r;      /* its layers, then the labels */
  geo_open open[AERT_OPEN_TILES];
  unsigned long clock;
  float *labels;       /* patch x patch scratch */
  unsigned char *nodata;   /* patch x patch: 1 where a layer's NoData value or mask says so */
} geo_reader;

struct aert_tiles {
  const aert_model *m;
  char *dir;
  int n_layers;
  geo_layer layer[AERT_MAX_LAYERS];
  int n, *w, *h, *bad;
  char **tile;
  int threads, skip_bad;
  int open_max;        /* tiles each reader keeps open (AERT_OPEN_TILES, fewer with many files) */
  long cache_bytes;    /* decoded chunks each of their files keeps */
  long skipped;
  geo_reader *reader;
  float mean[AERT_MAX_BANDS], inv_std[AERT_MAX_BANDS];
  int standardize;
  int unlabeled;       /* 1: new data for predict --input: tiles named by their first layer, no labels */
  char *scene;         /* predict --input of one file holding every input band: its path */
  int scenes;          /* predict --input of a folder of such files: <dir>/<tile>.tif */
  double class_count[AERT_MAX_CLASSES];   /* labelled pixels per class in the sample */
  long patches;        /* read so far, and the seconds spent (for patches/s) */
  double seconds;
  pthread_mutex_t mu;
  pthread_mutex_t fill_mu;   /* one batch at a time: the readers belong to the batch being filled */
};


/* data_geo.c's readers, which whole-tile prediction uses too */
float aert_geo_label_class(const aert_model *m, const aert_raster *lab, float label);
void aert_geo_normalise(const aert_tiles *t, float *x);
int aert_geo_read_patch(aert_tiles *t, geo_reader *r, int tile, int x0, int y0, float *x, float *y);
int aert_geo_reader_open(aert_tiles *t, geo_reader *r, int tile);
aert_tiles *aert_geo_tiles_open(const aert_model *m, const char *dir, int unlabeled, const char *only, const char *scene);

#endif
