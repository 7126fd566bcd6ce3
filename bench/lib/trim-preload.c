/*
 * Preloaded (LD_PRELOAD) into a Node-RED the bench starts, core's or ours, so that
 * the bench can have glibc's malloc_trim(0) called in it: gdb cannot call a
 * function on some CPUs ("Couldn't write extended state status"). A thread made
 * at load time waits on a FIFO in $WSRS_BENCH_TRIM_DIR; each writer that opens
 * it, writes one byte and closes it gets one malloc_trim(0) ('t') or none ('s'),
 * then a line in "done": the trim's result (-1 if none), then glibc's totals over
 * all arenas (mallinfo2): bytes from the system (heap + mmapped) and bytes in use.
 * The thread runs the calls itself, not a signal handler: they take malloc's
 * locks, which a handler interrupting malloc could not.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char req[4096];
static char done[4096];

static void *serve(void *unused) {
    (void)unused;
    for (;;) {
        int fd = open(req, O_RDONLY); /* blocks until the bench opens it to write */
        if (fd < 0 && errno == EINTR) continue; /* a signal of Node's came to this thread */
        if (fd < 0) return NULL;
        char buf[64], op = 't';
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) op = buf[0];
        while (n > 0) n = read(fd, buf, sizeof buf);
        close(fd);
        int released = op == 's' ? -1 : malloc_trim(0);
        struct mallinfo2 mi = mallinfo2();
        FILE *f = fopen(done, "a");
        if (!f) return NULL;
        fprintf(f, "%d %zu %zu\n", released, mi.arena + mi.hblkhd, mi.uordblks + mi.hblkhd);
        fclose(f);
    }
}

__attribute__((constructor)) static void start(void) {
    const char *dir = getenv("WSRS_BENCH_TRIM_DIR");
    if (!dir) return;
    snprintf(req, sizeof req, "%s/req", dir);
    snprintf(done, sizeof done, "%s/done", dir);
    if (mkfifo(req, 0600) != 0) return; /* one process per directory */
    pthread_t t;
    if (pthread_create(&t, NULL, serve, NULL) == 0) pthread_detach(t);
}
