/* fuzz_file.c - libFuzzer harness for the runtime's file readers: the bytes are written
 * to a file and read as an IDX data file (FUZZ_IDX) or as a checkpoint (FUZZ_CKPT),
 * exactly as the trainer reads them, or opened from memory as a GeoTIFF whose windows are
 * read (FUZZ_TIFF). Reader errors are expected; crashes are not. */
#include "aert_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef FUZZ_TIFF

static int min(int a, int b) { return a < b ? a : b; }

/* Reads the top-left and bottom-right corners and a window across the first strip or tile
 * edge, up to 32 x 32 pixels of up to 3 bands, when the decoded chunks are small. */
static void read_windows(aert_raster *r) {
  static float px[32 * 32 * 4];
  long slots = r->planar ? r->bands : 1;
  if (r->chunk_bytes > (8 << 20) / slots)
    return;
  int w = min(r->width, 32), h = min(r->height, 32), nb = min(r->bands, 3);
  int x = min(r->chunk_w > w / 2 ? r->chunk_w - w / 2 : 0, r->width - w);
  int y = min(r->chunk_h > h / 2 ? r->chunk_h - h / 2 : 0, r->height - h);
  aert_raster_read(r, 0, 0, w, h, 0, nb, px, 4, 1);
  aert_raster_read(r, r->width - w, r->height - h, w, h, r->bands - nb, nb, px, 3, 0);
  aert_raster_read(r, x, y, w, h, 0, 1, px, 1, 0);
  aert_raster_read(r, 0, 0, w, h, 0, nb, px, 4, 1);
}
#else
static const char *scratch_path(void) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/aec_fuzz_%d.bin", (int)getpid());
  return path;
}
#endif

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
#ifdef FUZZ_TIFF
  aert_raster r;
  if (aert_raster_open_mem(&r, "fuzz.tif", data, size) == 0) {
    read_windows(&r);
    if (r.mask)   /* GDAL's internal mask: 1-bit rows widened, read like the image */
      read_windows(r.mask);
    aert_raster_close(&r);
  }
#else
  const char *path = scratch_path();
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
#ifdef FUZZ_IDX
  aert_idx idx;
  if (aert_idx_read(path, &idx) == 0) free(idx.data);
#elif defined FUZZ_CKPT
  aert_ckpt ck;
  if (aert_ckpt_load(path, &ck) == 0) {
    for (int i = 0; i < ck.n; i++) (void)aert_ckpt_find(&ck, ck.t[i].name);
    aert_ckpt_free(&ck);
  }
#endif
#endif
  return 0;
}
