/* data.cu - the batches of model.cu's device (runtime/aert_cuda_data.h) against the host's.
 * For two epochs of the model's training set (Fashion-MNIST, --limit examples), every batch
 * that the device makes from the kept IDX set (keep, then batch_kept with the batch's
 * indices) must be, bit for bit, the batch that the host's loader makes (aert_loader:
 * aert_batch_fill and augment.c), inputs and targets; and the same batch sent through the
 * device's `batch` (the pinned buffers and the copy stream) must arrive unchanged in the
 * device's batch buffer. Built by tests/cuda/data.sh as compare.cu is:
 *
 *   g++ -std=gnu++20 -fopenmp -Iruntime -IDIR -x c++ tests/cuda/data.cu -x none model_cpu.o build/libaert.a ...
 *   data DATA_DIR LIMIT   prints what it compared; exit status 1 at the first difference */
#define AEC_NO_MAIN
#include "model.cu"

#include <stdlib.h>
#include <string.h>

#include <vector>

/* The device's current batch buffer (inputs, then targets), copied to the host. */
static void device_batch(const aert_device *d, std::vector<float> &x, std::vector<float> &t) {
  const aecd_feed *f = &((const cuda_device *)d->own)->feed;
  AEC_CHECK(cudaMemcpy(x.data(), aecd_feed_x(f), sizeof(float) * x.size(), cudaMemcpyDeviceToHost));
  if (!t.empty())
    AEC_CHECK(cudaMemcpy(t.data(), aecd_feed_t(f), sizeof(float) * t.size(), cudaMemcpyDeviceToHost));
}

/* The number of values of a that differ from b in their bits (NaN included). */
static long differing(const float *a, const float *b, long n) {
  long bad = 0;
  for (long i = 0; i < n; i++) bad += memcmp(a + i, b + i, sizeof(float)) != 0;
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 3) return fprintf(stderr, "usage: data DATA_DIR LIMIT\n"), 2;
  static aert_model m;
  m = cuda_descriptor();
  aert_dataset all, train, val;
  if (aert_data_load(&m, argv[1], 1, atol(argv[2]), &all) != 0) return 1;
  aert_data_split(&all, m.data.validation, &train, &val);
  const uint64_t seed = 11;
  aert_device_set set;
  if (!aert_device_set_of(&m, &train, seed, &set))
    return fprintf(stderr, "data: model %s's training set is not one a device keeps\n", m.name), 1;
  aert_device d;
  aert_loader l;
  if (aert_device_open(&d, &m, 1) != 0 || aert_loader_init_on(&l, &m, &train, &d) != 0) return 1;
  if (!l.pinned[0][0] || !l.pinned[1][0]) return fprintf(stderr, "data: the loader's slots are not the device's pinned memory\n"), 1;
  if (!aert_device_keep(&d, &set)) return fprintf(stderr, "data: the device did not keep the set\n"), 1;
  long tsize = m.target_kind != AERT_TARGET_INPUT ? m.target_size : 0, nb = train.n / m.batch;
  std::vector<float> x((size_t)m.batch * m.in_size), t((size_t)m.batch * tsize), copy((size_t)m.batch * m.in_size);
  std::vector<long> order(train.n), index(m.batch);
  long batches = 0, bad = 0, sent_bad = 0;
  for (long epoch = 0; epoch < 2; epoch++) {
    aert_shuffle(order.data(), train.n, seed, epoch);
    if (aert_loader_start(&l, order.data(), 0, nb, seed, epoch) != 0) return 1;
    for (long b = 0; b < nb; b++, batches++) {
      float *hx, *hy;
      if (aert_loader_take(&l, b, &hx, &hy) != 0) return 1;
      for (long k = 0; k < m.batch; k++) index[k] = order[b * m.batch + k];
      aert_device_batch_kept(&d, index.data(), epoch);
      device_batch(&d, x, t);
      long wrong = differing(hx, x.data(), (long)x.size()) + (tsize ? differing(hy, t.data(), (long)t.size()) : 0);
      if (wrong && !bad)
        fprintf(stderr, "data: epoch %ld batch %ld: %ld values differ from the host's\n", epoch + 1, b + 1, wrong);
      bad += wrong;
      aert_device_batch(&d, hx, hy ? hy : hx);   /* straight from the loader's pinned slot */
      device_batch(&d, x, t);
      sent_bad += differing(hx, x.data(), (long)x.size()) + (tsize ? differing(hy, t.data(), (long)t.size()) : 0);
      memcpy(copy.data(), hx, sizeof(float) * copy.size());
      aert_device_batch(&d, copy.data(), copy.data());   /* through the device's own pinned buffers */
      device_batch(&d, x, t);
      sent_bad += differing(hx, x.data(), (long)x.size());
      aert_loader_release(&l, b);
    }
    aert_loader_stop(&l);
  }
  printf("%ld batches of %d (%s): %ld values of the batches made on the device differ from the host's, %ld of the batches sent from pinned memory\n",
         batches, m.batch, set.augment ? "augmented" : "not augmented", bad, sent_bad);
  aert_loader_free(&l);
  aert_device_close(&d);
  aert_data_free(&all);
  return bad || sent_bad || batches == 0;
}
