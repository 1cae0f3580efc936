/* settings.c - the spec's named settings, one table each: the words a spec writes, in the
 * order of their enums (aec.h), and the runtime's name for each (runtime/aert.h). Checking,
 * did-you-mean suggestions, summaries and the emitted descriptor all read these tables. */
#include "aec.h"

#include <string.h>

const ae_setting_table ae_optimizers = {
  "optimizer", OPT__COUNT, {"sgd", "adam", "adamw"}, {"AERT_OPT_SGD", "AERT_OPT_ADAM", "AERT_OPT_ADAMW"},
};

const ae_setting_table ae_schedules = {
  "schedule", SCHED__COUNT, {"constant", "step", "cosine", "exponential", "plateau"},
  {"AERT_SCHED_CONSTANT", "AERT_SCHED_STEP", "AERT_SCHED_COSINE", "AERT_SCHED_EXPONENTIAL", "AERT_SCHED_PLATEAU"},
};

const ae_setting_table ae_sources = {
  "data source", SOURCE__COUNT, {"idx", "geotiff", "synthetic_landcover", "image_pairs", "images"},
  {"AERT_DATA_IDX", "AERT_DATA_GEOTIFF", "AERT_DATA_SYNTHETIC_LANDCOVER", "AERT_DATA_IMAGE_PAIRS", "AERT_DATA_IMAGES"},
};

int ae_setting_find(const ae_setting_table *t, const char *word) {
  for (int i = 0; word && i < t->n; i++)
    if (strcmp(t->names[i], word) == 0) return i;
  return -1;
}
