/* dist.c - the processes of a data-parallel run (dist.h): MPI when compiled with -DAERT_MPI
 * (mpicc, for `aec build --mpi`), otherwise one process whose collectives do nothing. Both
 * halves share the launcher checks and the step watchdog. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "aert_internal.h"
#include "dist.h"
#ifdef AERT_MPI
#include <mpi.h>
#endif

static int rank, size = 1;

/* The number of processes a launcher started, from its environment: mpirun (Open MPI),
 * a PMI or PMIx launcher (MPICH's Hydra, srun --mpi=pmi2|pmix), srun itself. 1 if none. */
static long launched_tasks(const char **by) {
  static const struct { const char *var, *name; } vars[] = {
    {"OMPI_COMM_WORLD_SIZE", "mpirun"}, {"PMI_SIZE", "a PMI launcher"}, {"PMIX_SIZE", "a PMIx launcher"},
    {"SLURM_STEP_NUM_TASKS", "srun"},
  };
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i].var);
    if (v && atol(v) > 1) {
      *by = vars[i].name;
      return atol(v);
    }
  }
  return 1;
}

#ifdef AERT_MPI
/* srun starts its tasks with PMIx or PMI only when asked (--mpi=pmix): without, each
 * task is a job of one rank that would train alone on the whole data. */
static int srun_without_plugin(long tasks) {
  if (!getenv("SLURM_STEP_NUM_TASKS") || getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") ||
      getenv("PMI_RANK"))
    return 0;
  aert_error("started by srun as one of %ld tasks without an MPI plugin, so each would train alone: "
             "run 'srun --mpi=pmix -n %ld ...' (or set MpiDefault=pmix in slurm.conf)", tasks, tasks);
  return 1;
}

int aert_dist_init(int *argc, char ***argv) {
  const char *by = NULL;
  long tasks = launched_tasks(&by);
  if (tasks > 1 && srun_without_plugin(tasks))
    return -1;
  if (MPI_Init(argc, argv) != MPI_SUCCESS)
    return aert_error("MPI_Init failed (started by %s)", by ? by : "no launcher"), -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1 && tasks > 1) {
    aert_error("%s started %ld processes, but each sees a job of one rank: the launcher and this "
               "program's MPI do not match (srun needs --mpi=pmix)", by, tasks);
    MPI_Finalize();
    return -1;
  }
  return 0;
}

void aert_dist_finish(int failed) {
  if (failed && size > 1)
    MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
}

void aert_dist_sum_floats(float *v, long n) {
  for (long done = 0; size > 1 && done < n;) {   /* MPI counts are ints */
    int part = n - done < (1L << 30) ? (int)(n - done) : 1 << 30;
    MPI_Allreduce(MPI_IN_PLACE, v + done, part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    done += part;
  }
}

void aert_dist_sum_doubles(double *v, int n) {
  if (size > 1)
    MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void aert_dist_broadcast(void *buf, long bytes) {
  for (long done = 0; size > 1 && done < bytes;) {
    int part = bytes - done < (1L << 30) ? (int)(bytes - done) : 1 << 30;
    MPI_Bcast((char *)buf + done, part, MPI_BYTE, 0, MPI_COMM_WORLD);
    done += part;
  }
}

void aert_dist_barrier(void) {
  if (size > 1)
    MPI_Barrier(MPI_COMM_WORLD);
}
#else
int aert_dist_init(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *by = NULL;
  long tasks = launched_tasks(&by);
  if (tasks > 1)
    aert_error("started by %s as one of %ld processes, but this trainer was built without MPI, so "
               "each would train alone: build it with 'aec build --mpi'", by, tasks);
  return tasks > 1 ? -1 : 0;
}

void aert_dist_finish(int failed) { (void)failed; }
void aert_dist_sum_floats(float *v, long n) { (void)v, (void)n; }
void aert_dist_sum_doubles(double *v, int n) { (void)v, (void)n; }
void aert_dist_broadcast(void *buf, long bytes) { (void)buf, (void)bytes; }
void aert_dist_barrier(void) {}
#endif

int aert_dist_rank(void) { return rank; }
int aert_dist_size(void) { return size; }

/* ---- the step watchdog ------------------------------------------------------------ */
static struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running, seconds;
  double last;                 /* aert_now() when the last step finished */
  unsigned long long step;
} dog = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *watch(void *arg) {
  (void)arg;
  pthread_mutex_lock(&dog.mu);
  while (dog.running) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_cond_timedwait(&dog.cv, &dog.mu, &until);
    if (dog.running && aert_now() - dog.last > dog.seconds) {
      /* the process ends here: the launcher sees a rank fail and ends the others */
      aert_error("rank %d of %d: step %llu has not finished in %d s (--step-timeout): a rank hangs or "
                 "its data is unreachable; ending the job (last.ckpt keeps the last completed epoch)",
                 rank, size, dog.step + 1, dog.seconds);
      fflush(stdout);
      _exit(1);
    }
  }
  pthread_mutex_unlock(&dog.mu);
  return NULL;
}

int aert_dist_watchdog_start(int seconds) {
  dog.seconds = seconds;
  dog.last = aert_now();
  dog.running = 1;
  if (pthread_create(&dog.thread, NULL, watch, NULL) != 0) {
    dog.running = 0;
    return aert_error("cannot start the step watchdog thread"), -1;
  }
  return 0;
}

void aert_dist_progress(unsigned long long step) {
  pthread_mutex_lock(&dog.mu);
  dog.last = aert_now();
  dog.step = step;
  pthread_mutex_unlock(&dog.mu);
}

void aert_dist_watchdog_stop(void) {
  if (!dog.running)
    return;
  pthread_mutex_lock(&dog.mu);
  dog.running = 0;
  pthread_cond_signal(&dog.cv);
  pthread_mutex_unlock(&dog.mu);
  pthread_join(dog.thread, NULL);
}
