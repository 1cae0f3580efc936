/* trainer_main.c - the main of a generated trainer, for a model.c compiled on its own with
 * -DAEC_NO_MAIN (tests/gradcheck's model.o): specgen.py links its trainers from that object
 * instead of compiling model.c a second time. The same two calls as model.c's own main. */
#include "aert.h"

extern const aert_model aec_model;

int main(int argc, char **argv) {
  aert_prefer_passive_threads(argv);
  return aert_main(&aec_model, argc, argv);
}
