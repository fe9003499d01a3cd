/*
 * What the worker-engine bridge costs per message, against what a shared
 * memory ring would cost: the measurement behind keeping socket pairs.
 *
 * Two processes (a "worker" and an "engine") pass 100-byte messages back
 * and forth over NFLOWS flows, as keepalive requests and responses do:
 *
 *   pair  one AF_UNIX stream socket pair per flow, edge-triggered epoll,
 *         one read and one write per message (today's bridge);
 *   ring  one shared-memory byte ring per flow and direction, a queue of
 *         flows with news, and an eventfd doorbell rung only when the
 *         other side is about to sleep (the candidate replacement).
 *
 * Prints the wall time per message of each and their ratio.  Both
 * sides busy one core each, so the time is the CPU one side spends per
 * message it receives and answers.
 *
 *   cc -O2 -o bridge bench/bridge.c && ./bridge [rounds]
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <time.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>


#define NFLOWS     16
#define MSG        100
#define RING       (40 * MSG)   /* whole messages: none wraps the end */
#define QUEUE      1024         /* > NFLOWS: never fills */


typedef struct {
    volatile uint32_t   head;   /* offset, written by the producer */
    volatile uint32_t   tail;   /* offset, written by the consumer */
    char                data[RING];
} ring_t;


typedef struct {
    volatile uint32_t   sleeping[2];
    volatile uint32_t   qhead[2];
    volatile uint32_t   qtail[2];
    uint32_t            queue[2][QUEUE];
    ring_t              ring[NFLOWS][2];     /* [flow][sender] */
} shared_t;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
pin(int cpu)
{
    cpu_set_t  set;

    CPU_ZERO(&set);
    CPU_SET(cpu % sysconf(_SC_NPROCESSORS_ONLN), &set);
    (void) sched_setaffinity(0, sizeof(set), &set);
}


static double
run_pair(long rounds)
{
    int                 sv[NFLOWS][2], ep, side, i, j, n;
    long                done;
    char                buf[4096];
    pid_t               pid;
    double              t0, t;
    ssize_t             r;
    struct epoll_event  ev[64], e;

    for (i = 0; i < NFLOWS; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]) == -1) {
            perror("socketpair");
            exit(1);
        }
    }

    memset(buf, 'x', sizeof(buf));

    pid = fork();
    side = (pid == 0);
    pin(side);

    ep = epoll_create1(0);

    for (i = 0; i < NFLOWS; i++) {
        e.events = EPOLLIN | EPOLLET;
        e.data.u32 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, sv[i][side], &e);
    }

    if (side == 0) {
        for (i = 0; i < NFLOWS; i++) {
            (void) write(sv[i][0], buf, MSG);
        }
    }

    t0 = now();
    done = 0;

    while (done < rounds) {
        n = epoll_wait(ep, ev, 64, 1000);
        if (n <= 0) {
            break;
        }

        for (j = 0; j < n; j++) {
            i = ev[j].data.u32;

            while ((r = read(sv[i][side], buf, sizeof(buf))) > 0) {
                (void) write(sv[i][side], buf, MSG);
                done++;
            }
        }
    }

    t = now() - t0;

    if (side == 1) {
        _exit(0);
    }

    waitpid(pid, NULL, 0);

    for (i = 0; i < NFLOWS; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }

    close(ep);

    return t / done * 1e6;
}


/* data into the flow's ring, the flow into the other side's queue */

static void
ring_send(shared_t *sh, int efd[2], int side, uint32_t flow, char *buf)
{
    int        other;
    ring_t    *rg;
    uint32_t   h;
    uint64_t   one;

    other = !side;
    rg = &sh->ring[flow][side];

    memcpy(rg->data + rg->head, buf, MSG);
    __atomic_store_n(&rg->head, (rg->head + MSG) % RING, __ATOMIC_RELEASE);

    h = sh->qhead[other];
    sh->queue[other][h % QUEUE] = flow;
    __atomic_store_n(&sh->qhead[other], h + 1, __ATOMIC_SEQ_CST);

    if (__atomic_load_n(&sh->sleeping[other], __ATOMIC_SEQ_CST)) {
        one = 1;
        (void) write(efd[other], &one, sizeof(one));
    }
}


static double
run_ring(long rounds)
{
    int                 efd[2], ep, side;
    long                done;
    char                buf[MSG];
    pid_t               pid;
    double              t0, t;
    ring_t             *rg;
    uint32_t            tail, flow, i;
    uint64_t            v;
    shared_t           *sh;
    struct epoll_event  e;

    sh = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }

    efd[0] = eventfd(0, EFD_NONBLOCK);
    efd[1] = eventfd(0, EFD_NONBLOCK);

    memset(buf, 'x', sizeof(buf));

    pid = fork();
    side = (pid == 0);
    pin(side);

    ep = epoll_create1(0);
    e.events = EPOLLIN;
    e.data.u32 = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd[side], &e);

    if (side == 0) {
        for (i = 0; i < NFLOWS; i++) {
            ring_send(sh, efd, 0, i, buf);
        }
    }

    t0 = now();
    done = 0;

    while (done < rounds) {
        tail = sh->qtail[side];

        if (tail == __atomic_load_n(&sh->qhead[side], __ATOMIC_ACQUIRE)) {

            /* announce the sleep, then look once more: no lost doorbell */

            __atomic_store_n(&sh->sleeping[side], 1, __ATOMIC_SEQ_CST);

            if (tail == __atomic_load_n(&sh->qhead[side], __ATOMIC_SEQ_CST)) {
                if (epoll_wait(ep, &e, 1, 1000) <= 0) {
                    break;
                }

                (void) read(efd[side], &v, sizeof(v));
            }

            __atomic_store_n(&sh->sleeping[side], 0, __ATOMIC_SEQ_CST);
            continue;
        }

        flow = sh->queue[side][tail % QUEUE];
        __atomic_store_n(&sh->qtail[side], tail + 1, __ATOMIC_RELEASE);

        rg = &sh->ring[flow][!side];
        memcpy(buf, rg->data + rg->tail, MSG);
        __atomic_store_n(&rg->tail, (rg->tail + MSG) % RING, __ATOMIC_RELEASE);

        ring_send(sh, efd, side, flow, buf);
        done++;
    }

    t = now() - t0;

    if (side == 1) {
        _exit(0);
    }

    waitpid(pid, NULL, 0);

    close(efd[0]);
    close(efd[1]);
    close(ep);
    munmap(sh, sizeof(shared_t));

    return t / done * 1e6;
}


int
main(int argc, char **argv)
{
    long    rounds;
    double  pair, ring;

    rounds = (argc > 1) ? atol(argv[1]) : 200000;

    pair = run_pair(rounds);
    ring = run_ring(rounds);

    printf("bridge: %d flows, %d-byte messages, %ld each way\n",
           NFLOWS, MSG, rounds);
    printf("  socket pair (today):        %6.2f us per message\n", pair);
    printf("  shared ring + eventfd:      %6.2f us per message\n", ring);
    printf("  ratio socket pair / ring:   %6.2f\n", pair / ring);

    return 0;
}
