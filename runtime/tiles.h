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

/* The files of the tile a reader has open (one reader per data thread). */
typedef struct {
  int tile;            /* -1: none */
  aert_raster r[AERT_MAX_LAYERS + 1];   /* the layers, then the labels */
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
