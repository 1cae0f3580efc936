/* allreduce.c - what data-parallel training adds to a step (bench/mpi.sh): the time of one
 * MPI_Allreduce (sum, in place) of the gradient arena of each model named on the command
 * line as NAME=FLOATS, the fastest and the median of STEPS calls after warm-up (each the
 * slowest rank's time), on however many ranks mpirun starts. Rank 0 prints one JSON line per
 * model. On a shared machine the median includes waits for a core; the fastest does not. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Seconds of one all-reduce of n floats over steps calls (after 3 unmeasured): the fastest
 * into *fastest, the median returned. */
static double time_allreduce(float *v, long n, int steps, double *fastest) {
  double *t = malloc(sizeof(double) * (size_t)steps);
  for (int i = -3; i < steps; i++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);   /* the slowest rank */
    if (i >= 0)
      t[i] = dt;
  }
  qsort(t, (size_t)steps, sizeof(double), by_value);
  double median = t[steps / 2];
  *fastest = t[0];
  free(t);
  return median;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 3) {
    if (rank == 0)
      fprintf(stderr, "usage: mpirun -np N allreduce STEPS NAME=FLOATS...\n");
    MPI_Finalize();
    return 2;
  }
  int steps = atoi(argv[1]);
  for (int a = 2; a < argc; a++) {
    char *eq = strchr(argv[a], '=');
    long n = eq ? atol(eq + 1) : 0;
    if (n <= 0 || steps < 1) {
      if (rank == 0)
        fprintf(stderr, "allreduce: expected STEPS and NAME=FLOATS, got '%s'\n", argv[a]);
      MPI_Finalize();
      return 2;
    }
    float *v = calloc((size_t)n, sizeof(float));
    double fastest, median = time_allreduce(v, n, steps, &fastest);
    if (rank == 0)
      printf("{\"model\": \"%.*s\", \"ranks\": %d, \"floats\": %ld, \"fastest_ms\": %.4f, \"median_ms\": %.4f}\n",
             (int)(eq - argv[a]), argv[a], size, n, fastest * 1e3, median * 1e3);
    free(v);
  }
  MPI_Finalize();
  return 0;
}
