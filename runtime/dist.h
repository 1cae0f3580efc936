/* dist.h - data-parallel training across processes: the one interface to MPI (dist.c).
 * The normal build is one process, rank 0 of 1, where every collective returns at once;
 * `aec build --mpi` links dist.c compiled by mpicc with -DAERT_MPI (build/libaert_mpi.a).
 * A CUDA target would put NCCL's all-reduce behind the same calls. */
#ifndef AERT_DIST_H
#define AERT_DIST_H

/* Joins the job (MPI_Init under mpirun, srun --mpi=pmix or any launcher). Returns -1 with a
 * message when the environment says this process is one of several that cannot talk: srun
 * without an MPI plugin, or a trainer built without --mpi started as N ranks. */
int aert_dist_init(int *argc, char ***argv);
/* Leaves the job: MPI_Finalize when every rank succeeded; after an error on this rank,
 * MPI_Abort, which ends the others too (they may wait in a collective for this one). */
void aert_dist_finish(int failed);
int aert_dist_rank(void);
int aert_dist_size(void);

/* Element-wise sums over the ranks, in place; every rank gets the same bits (one
 * MPI_Allreduce, whose order of additions is fixed for a given rank count and size). */
void aert_dist_sum_floats(float *v, long n);
void aert_dist_sum_doubles(double *v, int n);
/* Rank 0's bytes to every rank. */
void aert_dist_broadcast(void *buf, long bytes);
void aert_dist_barrier(void);

/* The step watchdog: a thread that ends this process with a message when no step finishes
 * for seconds (a rank hangs, so the others wait in a collective forever); the launcher then
 * ends the job. aert_dist_progress marks a finished step. */
int aert_dist_watchdog_start(int seconds);
void aert_dist_progress(unsigned long long step);
void aert_dist_watchdog_stop(void);

#endif
