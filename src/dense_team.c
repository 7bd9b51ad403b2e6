/*
 * dense_team.c -- a team of threads for the dense block's kernels: one OpenMP parallel region
 * per factorisation (or per run of panels, so that user interrupts can be checked between), in
 * which thread 0 (the master) runs the algorithm and the other threads serve the jobs it
 * publishes.  No R API inside.
 *
 * A job is a function and nchunks independent chunks.  Chunks are numbered by tickets that only
 * grow: the job owns tickets [base, end); a thread claims the next ticket by compare-and-swap
 * bounded by end, so a thread still looking at an older job can never take a newer one's ticket.
 * Completed chunks are counted; "every ticket below t is done" is done >= t, because tickets at
 * or above t are only issued after that wait.
 *
 * Nobody waits for a thread to arrive, only for claimed chunks to finish, and waiting threads
 * spin briefly then yield the processor: on a machine whose cores are busy with other work a
 * descheduled thread costs its unfinished chunk, not a barrier per step (OpenMP barriers spin
 * for milliseconds).  The region's closing barrier is the only one.
 *
 * With one thread (or without OpenMP) the master runs every chunk itself, in ticket order; the
 * arithmetic of each chunk never depends on who runs it, so results are identical.
 */
#include "lmm.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && defined(__GNUC__)
#define TEAM_THREADS 1
#if !defined(_WIN32)
#include <sched.h>
#endif
#include <time.h>
#endif

struct lmm_team {
    double waited;        /* seconds the master spent waiting for others */
    long next;            /* next ticket */
    long done;            /* chunks completed */
    long seq;             /* job number x 2, odd while the master writes the job */
    long base, end;       /* the current job's tickets */
    lmm_chunk_fn fn;      /* its chunk function and argument */
    const void *arg;
    int stop;             /* the job is "leave" */
    int exited;           /* threads that have left */
};

#ifdef TEAM_THREADS
#define LOAD(p, o) __atomic_load_n(p, o)
#define STORE(p, v, o) __atomic_store_n(p, v, o)
#define RLX __ATOMIC_RELAXED
#define ACQ __ATOMIC_ACQUIRE
#define REL __ATOMIC_RELEASE

/* one step of a wait: pause for a while, then give the processor to whoever needs it */
static void relax(int *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    *spins = 0;
#if !defined(_WIN32)
    sched_yield();
#endif
}
#else
#define LOAD(p, o) (*(p))
#define STORE(p, v, o) (*(p) = (v))
#endif

/* a snapshot of the current job */
typedef struct { long seq, end; lmm_chunk_fn fn; const void *arg; int stop; } job;

/* Claim the next ticket below end, or -1 when there is none. */
static long claim(lmm_team *t, long end)
{
#ifdef TEAM_THREADS
    long c = LOAD(&t->next, RLX);
    while (c < end)
        if (__atomic_compare_exchange_n(&t->next, &c, c + 1, 1, __ATOMIC_ACQ_REL, RLX)) return c;
    return -1;
#else
    return t->next < end ? t->next++ : -1;
#endif
}

/* Run chunks of the job j until its tickets are all claimed. */
static void run(lmm_team *t, const job *j, long base)
{
    long c;
    while ((c = claim(t, j->end)) >= 0) {
        j->fn(j->arg, c - base);
#ifdef TEAM_THREADS
        __atomic_add_fetch(&t->done, 1, __ATOMIC_RELEASE);
#else
        t->done++;
#endif
    }
}

#ifdef TEAM_THREADS
/* Wait for a job newer than seen and copy it (a seqlock read: retried if the master rewrote it
   meanwhile).  *base gets its first ticket. */
static job next_job(lmm_team *t, long seen, long *base)
{
    int spins = 0;
    for (;;) {
        long s = LOAD(&t->seq, ACQ);
        if (s == seen || (s & 1)) { relax(&spins); continue; }
        job j = {s, LOAD(&t->end, RLX), LOAD(&t->fn, RLX), LOAD(&t->arg, RLX), LOAD(&t->stop, RLX)};
        *base = LOAD(&t->base, RLX);
        __atomic_thread_fence(ACQ);
        if (LOAD(&t->seq, RLX) == s) return j;
    }
}

/* The life of a thread other than the master: serve jobs until told to leave. */
static void serve(lmm_team *t)
{
    long seen = 0, base;
    for (;;) {
        job j = next_job(t, seen, &base);
        seen = j.seq;
        if (j.stop) break;
        run(t, &j, base);
    }
    __atomic_add_fetch(&t->exited, 1, __ATOMIC_RELEASE);
}
#endif

/* Master: make (fn, arg) with nchunks chunks the current job.  Returns its end ticket (wait for
   it with lmm_team_wait).  The previous job's tickets must all be claimed (lmm_team_work). */
long lmm_team_publish(lmm_team *t, lmm_chunk_fn fn, const void *arg, long nchunks, int stop)
{
    long base = LOAD(&t->next, RLX), s = t->seq;
#ifdef TEAM_THREADS
    STORE(&t->seq, s + 1, RLX);
    __atomic_thread_fence(REL);
#endif
    STORE(&t->base, base, RLX);
    STORE(&t->end, base + nchunks, RLX);
    STORE(&t->fn, fn, RLX);
    STORE(&t->arg, arg, RLX);
    STORE(&t->stop, stop, RLX);
    STORE(&t->seq, s + 2, REL);
    return base + nchunks;
}

/* Master: take part in the current job until all its chunks are claimed. */
void lmm_team_work(lmm_team *t)
{
    job j = {t->seq, t->end, t->fn, t->arg, t->stop};
    run(t, &j, t->base);
}

/* Master: wait until every chunk below ticket end is done. */
void lmm_team_wait(lmm_team *t, long end)
{
#ifdef TEAM_THREADS
    if (LOAD(&t->done, ACQ) >= end) return;
    int spins = 0;
    double t0 = omp_get_wtime();
    while (LOAD(&t->done, ACQ) < end) relax(&spins);
    t->waited += omp_get_wtime() - t0;
#else
    (void) t; (void) end;
#endif
}

/* Master: the job (fn, arg, nchunks) run to its end, shared with the team. */
void lmm_team_for(lmm_team *t, lmm_chunk_fn fn, const void *arg, long nchunks)
{
    long end = lmm_team_publish(t, fn, arg, nchunks, 0);
    lmm_team_work(t);
    lmm_team_wait(t, end);
}

/* Wait until *flag == value (set by any thread with lmm_team_signal). */
void lmm_team_wait_flag(lmm_team *t, const int *flag, int value)
{
#ifdef TEAM_THREADS
    if (LOAD(flag, ACQ) == value) return;
    int spins = 0;
    double t0 = omp_get_wtime();
    while (LOAD(flag, ACQ) != value) relax(&spins);
    t->waited += omp_get_wtime() - t0;
#else
    (void) t; (void) flag; (void) value;
#endif
}

void lmm_team_signal(int *flag, int value)
{
    STORE(flag, value, REL);
}

/* Back-off when the processors are busy with other work.  A team's run is lost time for the
   master while it waits for the others or is itself off its processor (elapsed minus its own
   CPU time); when that is a large part of the run, the threads are not getting a processor each
   and one thread would do better.  Then the next calls run on one thread, for twice as many
   calls each time it happens again (up to 256), until a run goes well.  Master thread only. */
#ifdef TEAM_THREADS
static int busy_skip, busy_next = 1;
#define BUSY_LOST_FRACTION 0.1
#define BUSY_MIN_SECONDS 2e-4

/* this thread's CPU time in seconds, or -1 where there is no such clock */
static double thread_cpu(void)
{
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return ts.tv_sec + 1e-9 * ts.tv_nsec;
#endif
    return -1;
}

static void busy_update(double waited, double elapsed, double cpu)
{
    double lost = waited + (cpu >= 0 && cpu < elapsed ? elapsed - cpu : 0);
#ifdef TEAM_DEBUG
    if (getenv("TEAM_DEBUG"))
        REprintf("team: waited %.3f off-cpu %.3f of %.3f ms\n", 1e3 * waited,
                 1e3 * (lost - waited), 1e3 * elapsed);
#endif
    if (elapsed < BUSY_MIN_SECONDS) return;
    if (lost > BUSY_LOST_FRACTION * elapsed) {
        busy_skip = busy_next;
        busy_next = busy_next < 256 ? 2 * busy_next : 256;
    } else busy_next = 1;
}
#endif

/* The threads to use for a team of nthreads now: 1 while backing off. */
int lmm_team_threads(int nthreads)
{
    if (nthreads <= 1) return 1;
#ifdef TEAM_THREADS
    if (busy_skip > 0) {
        busy_skip--;
        return 1;
    }
#endif
    return nthreads;
}

/* Run master(team, arg) on this thread with nthreads - 1 more threads serving its jobs.  No R
   API inside master: it runs in a parallel region. */
void lmm_team_run(int nthreads, void (*master)(lmm_team *, void *), void *arg)
{
    lmm_team t = {0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0};
#ifdef TEAM_THREADS
    if (nthreads > 1) {
        double t0 = omp_get_wtime(), c0 = thread_cpu();
#pragma omp parallel num_threads(nthreads)
        {
            if (omp_get_thread_num() == 0) {
                int others = omp_get_num_threads() - 1, spins = 0;
                master(&t, arg);
                lmm_team_publish(&t, NULL, NULL, 0, 1);   /* leave */
                double t1 = omp_get_wtime();
                while (LOAD(&t.exited, ACQ) < others) relax(&spins);
                t.waited += omp_get_wtime() - t1;
            } else serve(&t);
        }
        double c1 = thread_cpu();
        busy_update(t.waited, omp_get_wtime() - t0, c0 >= 0 && c1 >= 0 ? c1 - c0 : -1);
        return;
    }
#else
    (void) nthreads;
#endif
    master(&t, arg);
}
