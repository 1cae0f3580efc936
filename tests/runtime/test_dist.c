/* test_dist.c - the single-process side of dist.c (the normal build): rank 0 of 1, sums
 * and broadcasts that leave the data alone, the refusal to run as one of several processes
 * a launcher started, and the step watchdog's bookkeeping. The MPI side: tests/mpi. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <unistd.h>
#include "aert_internal.h"
#include "dist.h"

Test(dist, one_process_is_rank_0_of_1_and_collectives_change_nothing) {
  int argc = 1;
  char *args[] = {"toy", NULL}, **argv = args;
  cr_assert_eq(aert_dist_init(&argc, &argv), 0);
  cr_assert_eq(aert_dist_rank(), 0);
  cr_assert_eq(aert_dist_size(), 1);
  float f[3] = {1.5f, -2, 3};
  double d[2] = {0.25, 7};
  aert_dist_sum_floats(f, 3);
  aert_dist_sum_doubles(d, 2);
  aert_dist_broadcast(f, sizeof f);
  cr_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3 && d[0] == 0.25 && d[1] == 7);
}

/* Started by mpirun or srun as one of 2 processes, a trainer built without MPI would train
 * alone twice over the same output: it refuses, naming the fix. */
Test(dist, refuses_to_be_one_of_several_processes_without_mpi, .init = cr_redirect_stderr) {
  int argc = 1;
  char *args[] = {"toy", NULL}, **argv = args;
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "PMI_SIZE"};
  for (int i = 0; i < 3; i++) {
    setenv(vars[i], "2", 1);
    cr_assert_eq(aert_dist_init(&argc, &argv), -1, "%s=2 was not refused", vars[i]);
    unsetenv(vars[i]);
  }
  setenv("SLURM_STEP_NUM_TASKS", "1", 1);   /* srun -n 1: one process, as it should be */
  cr_assert_eq(aert_dist_init(&argc, &argv), 0);
  unsetenv("SLURM_STEP_NUM_TASKS");
  fflush(stderr);
  cr_assert_stderr_neq_str("");
}

Test(dist, watchdog_starts_and_stops_without_firing) {
  cr_assert_eq(aert_dist_watchdog_start(60), 0);
  for (unsigned long long s = 1; s <= 3; s++)
    aert_dist_progress(s);
  aert_dist_watchdog_stop();
  aert_dist_watchdog_stop();   /* a second stop is harmless */
}

/* A step that takes longer than the timeout ends the process with exit status 1. */
Test(dist, watchdog_ends_a_stalled_process, .exit_code = 1, .init = cr_redirect_stderr) {
  cr_assert_eq(aert_dist_watchdog_start(1), 0);
  sleep(5);
  cr_assert_fail("the watchdog did not end the process within 5 s");
}
