/* par_comm.h: the ranks of one job. Under an MPI launcher (mpirun, srun) in a
 * build with SUBBIT_MPI, every rank runs the same command and these calls are
 * MPI_COMM_WORLD's; otherwise (no launcher, or a build without MPI) they are
 * one process: rank 0 of 1, every collective a copy or nothing.
 *
 * Calling sequence (the CLI's main; library code only asks and joins):
 *   par_init(&argc, &argv, err);          MPI_Init only when launched by one
 *   ... par_rank(), par_size(), collectives, in the same order on every rank ...
 *   par_finalize();
 *
 * Failure: a rank that fails must still reach the next collective, so each
 * distributed step ends in par_agree(rc, err), which tells every rank the
 * first failing rank's status and message; only then does anyone stop. A rank
 * that fails alone outside a step (opening its input, its share of a layer)
 * gives its failure to par_settle(), which meets the other ranks at their next
 * par_agree; so every path of a distributed command reaches one.
 * Collectives are not thread-safe: call them from one thread. */
#ifndef PAR_COMM_H
#define PAR_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_err.h"

/*! par_init() : join the job when a launcher started this process (Open MPI's
 *  OMPI_COMM_WORLD_SIZE, PMI/PMIx's rank variables) and the build has MPI;
 *  else stay one process. @return SB_OK or SB_EUNSUPPORTED (launched with
 *  several ranks but built without MPI, or MPI_Init failed). */
int par_init(int *argc, char ***argv, struct sb_err *err);
/*! par_finalize() : leave the job (MPI_Finalize); safe without par_init. */
void par_finalize(void);
int par_rank(void);
int par_size(void);
/*! par_have_mpi() : whether this build can join an MPI job. */
bool par_have_mpi(void);

/*! par_agree() : collective. Every rank gives its status (and err when it
 *  failed); every rank gets the status of the lowest failing rank, with that
 *  rank's message copied into err ("rank N: " prefixed when N > 0), or SB_OK. */
int par_agree(int rc, struct sb_err *err);
/*! par_settle() : collective for a failing rank the job has not heard from.
 *  rc SB_OK, one process, or a failure the last par_agree already gave every
 *  rank: returns rc, no message. Otherwise par_agree(rc, err): the other
 *  ranks learn of it at their next par_agree (the caller guarantees they
 *  reach one) and stop. */
int par_settle(int rc, struct sb_err *err);
/*! par_bcast() : collective. n bytes of buf from root to every rank. */
int par_bcast(void *buf, uint64_t n, int root, struct sb_err *err);
/*! par_allgather() : collective (agreeing on its own allocation: a rank
 *  without room fails them all). Rank r gives n_mine bytes; every rank gets
 *  all of them concatenated in rank order in *all (sb_malloc'd, free with
 *  sb_free; NULL when the total is 0) and the per-rank byte counts in counts
 *  (an array of par_size(), or NULL). Fixed order, so sums done over it in
 *  that order are the same bits on every rank and at every rank count. */
int par_allgather(const void *mine, uint64_t n_mine, void **all, uint64_t *n_all,
                  uint64_t *counts, struct sb_err *err);
/*! par_max_u64() : collective. The largest v over the ranks in *max (one
 *  process: v). A failed MPI call gives its status and *max = v. */
int par_max_u64(uint64_t v, uint64_t *max, struct sb_err *err);
/*! par_split() : the share [*lo, *hi) of rank r out of n items with the given
 *  cumulative weights (cum[i] = weight of items 0..i-1, cum[n] the total; NULL:
 *  every item weighs 1): contiguous, in order, balanced by weight. */
void par_split(uint64_t n, const uint64_t *cum, int r, int size, uint64_t *lo, uint64_t *hi);
/*! par_fault() : fault injection for tests: true when the environment variable
 *  SUBBIT_PAR_FAULT is "RANK:POINT" for this rank and the named point. */
bool par_fault(const char *point);

#endif
