/*
 * edge_child.c: the combiner as a child of the edge: started with fork +
 * exec (a fresh process image), reaped when it dies, restarted with a
 * backoff; the handshakes that waited on it fail.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edge/internal.h"

int edge_combiner_start(struct edge_loop *L)
{
    const struct edge_config *cfg = L->cfg;
    pid_t pid;

    pid = fork();
    if (pid < 0) {
        return SPK_ERR_INTERNAL;
    }
    if (pid == 0) {
        sigset_t all;
        /* SIGHUP stays blocked across exec: one that comes while the
         * combiner starts waits for its signalfd instead of killing it. */
        sigemptyset(&all);
        sigaddset(&all, SIGHUP);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl(cfg->combiner_binary, cfg->combiner_binary, "run", "--config", cfg->combiner_config,
              "--listen", cfg->combiner_endpoint, (char *)NULL);
        fprintf(stderr, "edge: cannot run combiner %s: %s\n",
                cfg->combiner_binary[0] != '\0' ? cfg->combiner_binary : "(none found)",
                strerror(errno));
        _exit(127);
    }
    L->comb_pid = pid;
    L->comb_started_at = spk_now_ms();
    if (L->comb_restarts > 0) {
        spk_log("edge", "combiner restarted (pid %ld)", (long)pid);
    }
    return 0;
}

void edge_reap(struct edge_loop *L)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        if (pid == L->comb_pid) {
            L->comb_pid = 0;
            if (L->stop) {
                continue;
            }
            /* A combiner that stopped cleanly (SIGTERM) answered what it had
             * in flight before it exited, but those last answers may still be
             * on their way through ZeroMQ's I/O threads: take them for as
             * long as the combiner lingers to deliver them (1 s; over
             * unix:// until the connection's end is read) before
             * sending what is left to the restarted one, which may still be
             * connecting to its holders. 200 ms lost answers on a loaded
             * machine. A rare event, so blocking the loop is the simpler price. */
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                uint64_t until = spk_now_ms() + 1000;

                edge_client_process(L->client);
                while (edge_client_pending(L->client) > 0 && spk_now_ms() < until &&
                       edge_client_connected(L->client)) {
                    struct timespec pause = {0, 5 * 1000 * 1000};

                    nanosleep(&pause, NULL);
                    edge_client_process(L->client);
                }
            }
            spk_log("edge",
                    "combiner exited (%s %d); %zu operation(s) in flight go to the restarted "
                    "one, restarting",
                    WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                    edge_client_pending(L->client));
            edge_client_requeue_all(L->client);
            L->comb_restarts++;
            /* A combiner that ran a while is started again at once: service
             * is back as soon as it has its shares. One that keeps dying
             * right away is restarted less and less often (up to 5 s). */
            if (spk_now_ms() - L->comb_started_at >= 10000) {
                L->comb_backoff_ms = 0;
            }
            if (L->comb_backoff_ms == 0 && edge_combiner_start(L) == 0) {
                L->comb_backoff_ms = 100;
                continue;
            }
            L->comb_restart_at = spk_now_ms() + (L->comb_backoff_ms > 0 ? L->comb_backoff_ms : 100);
            L->comb_backoff_ms = L->comb_backoff_ms * 2 > 5000 ? 5000 : L->comb_backoff_ms * 2;
            if (L->comb_backoff_ms == 0) {
                L->comb_backoff_ms = 100;
            }
        }
    }
}
