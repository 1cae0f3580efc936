/* images.c - PNG grids through libpng: tiles of h x w x c floats, clipped to [0,1], shown
 * grey (c < 3) or RGB from the first three channels, laid out in rows with a 1-pixel
 * white gap; a NULL tile stays black. Written atomically. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include "aert_internal.h"

static unsigned char to_byte(float v) {
  v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  return (unsigned char)(v * 255.0f + 0.5f);
}

static void draw_tile(unsigned char *img, int stride, int ch, const float *t, int h, int w,
                      int c) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < ch; k++)
        img[y * stride + x * ch + k] = t ? to_byte(t[(y * w + x) * c + (c >= 3 ? k : 0)]) : 0;
}

static int write_png(FILE *f, const char *path, const unsigned char *img, int W, int H, int ch) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : NULL);
    return aert_error("cannot write '%s': libpng failed", path), -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
               ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; y++)
    png_write_row(png, img + (size_t)y * W * ch);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

int aert_png_grid(const char *path, int rows, int cols, const float *const *tiles, int h, int w,
                  int c) {
  int ch = c >= 3 ? 3 : 1;
  int W = cols * (w + 1) - 1, H = rows * (h + 1) - 1;
  unsigned char *img = aert_alloc((size_t)W * H * ch, path);
  if (!img)
    return -1;
  for (size_t i = 0; i < (size_t)W * H * ch; i++)
    img[i] = 255;
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < cols; k++)
      draw_tile(img + ((size_t)r * (h + 1) * W + (size_t)k * (w + 1)) * ch, W * ch, ch,
                tiles[r * cols + k], h, w, c);
  aert_atomic a;
  int rc = aert_atomic_open(&a, path);
  if (rc == 0) {
    rc = write_png(a.f, a.tmp, img, W, H, ch);
    if (rc == 0)
      rc = aert_atomic_commit(&a);
    else
      aert_atomic_abort(&a);
  }
  free(img);
  return rc;
}
