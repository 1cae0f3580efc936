/* class_map.c - what GIS tools show of a predicted class map besides its pixels: a colour
 * table of the class colours by label value, the NoData value, GDAL band metadata (band
 * descriptions, class names, the scale of probability bytes) and the category names that
 * GDAL and QGIS read from <file>.aux.xml. data_geo.c writes them with the COG (cog.c). */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

int aert_nodata_label(const aert_model *m) {
  return m->ignore_label >= 0 ? m->ignore_label : 0;
}

/* s appended to dst as XML text. */
static void xml_text(char *dst, size_t n, const char *s) {
  size_t k = strlen(dst);
  for (; *s && k + 7 < n; s++) {
    const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
    if (e)
      k += (size_t)snprintf(dst + k, n - k, "%s", e);
    else
      dst[k++] = *s, dst[k] = '\0';
  }
}

/* GDAL_METADATA items: band descriptions (class names, or "land cover classes") and, for
 * bytes of probability, their scale. */
void aert_band_metadata(const aert_model *m, int probs, char *md, size_t n) {
  snprintf(md, n, "<GDALMetadata>\n");
  for (int b = 0; b < (probs ? m->n_classes : 1); b++) {
    snprintf(md + strlen(md), n - strlen(md), "  <Item name=\"DESCRIPTION\" sample=\"%d\" "
             "role=\"description\">", b);
    if (!probs)
      xml_text(md, n, "land cover classes");
    else
      xml_text(md, n, m->class_names[b] ? m->class_names[b] : "class");
    snprintf(md + strlen(md), n - strlen(md), "</Item>\n");
    if (probs == AERT_PIX_U8 + 1)
      snprintf(md + strlen(md), n - strlen(md), "  <Item name=\"SCALE\" sample=\"%d\" "
               "role=\"scale\">%.9g</Item>\n", b, 1.0 / 254);
  }
  for (int c = 0; !probs && c < m->n_classes; c++) {
    snprintf(md + strlen(md), n - strlen(md), "  <Item name=\"CLASS_%d\">", m->class_ids[c]);
    xml_text(md, n, m->class_names[c] ? m->class_names[c] : "?");
    snprintf(md + strlen(md), n - strlen(md), "</Item>\n");
  }
  snprintf(md + strlen(md), n - strlen(md), "</GDALMetadata>");
}

/* Colours by label value (the class colours, black elsewhere), NoData, band metadata. */
void aert_map_style_init(const aert_model *m, aert_map_style *st) {
  memset(st, 0, sizeof *st);
  for (int c = 0; c < m->n_classes; c++) {
    int v = m->class_ids[c];
    const unsigned char *rgb = aert_class_colour(c);
    for (int k = 0; v >= 0 && v < 256 && k < 3; k++)
      st->colormap[k * 256 + v] = (uint16_t)(rgb[k] * 257);
  }
  snprintf(st->nodata, sizeof st->nodata, "%d", aert_nodata_label(m));
  aert_band_metadata(m, 0, st->metadata, sizeof st->metadata);
}

/* The class names as GDAL reads them from path.aux.xml: one per value up to the largest. */
int aert_write_category_names(const aert_model *m, const char *tif) {
  char *path = malloc(strlen(tif) + 9);
  if (!path)
    return aert_error("out of memory"), -1;
  sprintf(path, "%s.aux.xml", tif);
  int top = aert_nodata_label(m);
  for (int c = 0; c < m->n_classes; c++)
    top = m->class_ids[c] > top ? m->class_ids[c] : top;
  aert_atomic a;
  int rc = aert_atomic_open(&a, path);
  free(path);
  if (rc != 0)
    return -1;
  fprintf(a.f, "<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <CategoryNames>\n");
  for (int v = 0; v <= top && v < 256; v++) {
    char name[512] = "";
    for (int c = 0; c < m->n_classes; c++)
      if (m->class_ids[c] == v)
        xml_text(name, sizeof name, m->class_names[c] ? m->class_names[c] : "?");
    if (v == aert_nodata_label(m) && !name[0])
      snprintf(name, sizeof name, "no data");
    fprintf(a.f, "      <Category>%s</Category>\n", name);
  }
  fprintf(a.f, "    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n");
  if (ferror(a.f)) {
    aert_error("cannot write '%s'", a.tmp);
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}
