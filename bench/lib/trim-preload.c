/*
 * Preloaded (LD_PRELOAD) into a Node-RED the bench starts, core's or ours, so that
 * the bench can have glibc's malloc_trim(0) called in it: gdb cannot call a
 * function on some CPUs ("Couldn't write extended state status"). A thread made
 * at load time waits on a FIFO in $WSRS_BENCH_TRIM_DIR; each writer that opens
 * it, writes one byte and closes it gets one malloc_trim(0) ('t') or none ('s'),
 * then a line in "done": the trim's result (-1 if none), then glibc's totals over
 * all arenas (mallinfo2, glibc 2.33 and later; -1 -1 before): bytes from the
 * system (heap + mmapped) and bytes in use. The thread runs the calls itself, not
 * a signal handler: they take malloc's locks, which a handler interrupting malloc
 * could not. It blocks every signal, so that none of Node's interrupts its reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char req[4096];
static char done[4096];

static void report(int released) {
    FILE *f = fopen(done, "a");
    if (!f) return;
#if __GLIBC_PREREQ(2, 33)
    struct mallinfo2 mi = mallinfo2();
    fprintf(f, "%d %zu %zu\n", released, mi.arena + mi.hblkhd, mi.uordblks + mi.hblkhd);
#else
    fprintf(f, "%d -1 -1\n", released);
#endif
    fclose(f);
}

static void *serve(void *unused) {
    (void)unused;
    for (;;) {
        int fd = open(req, O_RDONLY); /* blocks until the bench opens it to write */
        if (fd < 0 && errno == EINTR) continue;
        if (fd < 0) return NULL;
        char buf[64];
        ssize_t n;
        do {
            n = read(fd, buf, 1);
        } while (n < 0 && errno == EINTR);
        char op = n == 1 ? buf[0] : 0;
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
        if (op == 't') report(malloc_trim(0));
        else if (op == 's') report(-1);
        /* anything else (a writer that wrote nothing) is not a request */
    }
}

__attribute__((constructor)) static void start(void) {
    const char *dir = getenv("WSRS_BENCH_TRIM_DIR");
    if (!dir) return;
    snprintf(req, sizeof req, "%s/req", dir);
    snprintf(done, sizeof done, "%s/done", dir);
    if (mkfifo(req, 0600) != 0) return; /* one process per directory */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread starts with this mask */
    pthread_t t;
    if (pthread_create(&t, NULL, serve, NULL) == 0) pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
