/* trainer_main.c - the main of a generated trainer, for a model.c compiled on its own with
 * -DAEC_NO_MAIN: specgen.py links its trainers from tests/gradcheck's model.o, and
 * tests/cuda/target.sh its CPU trainers from the model_cpu.o that compare.cu links, instead
 * of compiling model.c a second time. The same two calls as model.c's own main. */
#include "aert.h"

extern const aert_model aec_model;

int main(int argc, char **argv) {
  aert_prefer_passive_threads(argv);
  return aert_main(&aec_model, argc, argv);
}
