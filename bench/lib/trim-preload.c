/*
 * Preloaded (LD_PRELOAD) into a Node-RED the bench starts, core's or ours, so that
 * the bench can have glibc's malloc_trim(0) called in it: gdb cannot call a
 * function on some CPUs ("Couldn't write extended state status"). A thread made
 * at load time waits on a FIFO in $WSRS_BENCH_TRIM_DIR; each writer that opens
 * and closes it gets one malloc_trim(0), then a line in "done" with its result.
 * The thread runs the call itself, not a signal handler: malloc_trim takes
 * malloc's locks, which a handler interrupting malloc could not.
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
        char buf[64];
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
        int released = malloc_trim(0);
        FILE *f = fopen(done, "a");
        if (!f) return NULL;
        fprintf(f, "%d\n", released);
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
