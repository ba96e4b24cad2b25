/*
 * loadgen: drives mamorid's socket from outside its process, with as little CPU of its own as
 * possible, so that the daemon's throughput is what is measured.
 *
 *   loadgen SOCKET REQUEST_LINE CLIENTS PIPELINE SECONDS
 *
 * Each of CLIENTS threads connects, writes PIPELINE copies of the request line, reads PIPELINE
 * reply lines, and repeats until SECONDS have passed. Prints one line:
 *   replies=N errors=N seconds=S p50_us=X p99_us=Y
 * where latency is per batch (the time from writing a batch to reading its last reply), and
 * errors counts replies without "ok":true and broken connections.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 2000000

static const char *socket_path;
static char *batch;
static size_t batch_length;
static int pipeline_depth;
static double duration;
static double *samples;
static long sample_count;
static long replies_total;
static long errors_total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_socket(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof address.sun_path) { close(fd); return -1; }
    strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { close(fd); return -1; }
    return fd;
}

static void *client(void *unused) {
    (void)unused;
    int fd = connect_socket();
    long replies = 0, errors = 0, count = 0;
    double *local = malloc(sizeof(double) * 200000);
    if (fd < 0 || local == NULL) {
        pthread_mutex_lock(&lock); errors_total += 1; pthread_mutex_unlock(&lock);
        free(local);
        return NULL;
    }
    char buffer[1 << 16];
    /* Matches "ok":true within each reply line, across reads. */
    static const char pattern[] = "\"ok\":true";
    size_t matched = 0;
    int found = 0;
    double start = now();
    while (now() - start < duration) {
        double sent = now();
        size_t written = 0;
        while (written < batch_length) {
            ssize_t n = send(fd, batch + written, batch_length - written, MSG_NOSIGNAL);
            if (n <= 0) { errors += 1; goto done; }
            written += (size_t)n;
        }
        int lines = 0;
        while (lines < pipeline_depth) {
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0) { errors += 1; goto done; }
            for (ssize_t i = 0; i < n; i++) {
                char c = buffer[i];
                if (c == '\n') {
                    if (!found) errors += 1;
                    lines += 1;
                    matched = 0;
                    found = 0;
                } else if (!found) {
                    matched = (c == pattern[matched]) ? matched + 1 : (c == pattern[0] ? 1 : 0);
                    if (matched == sizeof pattern - 1) found = 1;
                }
            }
        }
        replies += lines;
        if (count < 200000) local[count++] = now() - sent;
    }
done:
    close(fd);
    pthread_mutex_lock(&lock);
    replies_total += replies;
    errors_total += errors;
    for (long i = 0; i < count && sample_count < MAX_SAMPLES; i++) samples[sample_count++] = local[i];
    pthread_mutex_unlock(&lock);
    free(local);
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: loadgen SOCKET REQUEST_LINE CLIENTS PIPELINE SECONDS\n");
        return 64;
    }
    socket_path = argv[1];
    const char *line = argv[2];
    int clients = atoi(argv[3]);
    pipeline_depth = atoi(argv[4]);
    duration = atof(argv[5]);
    if (clients < 1 || clients > 1024 || pipeline_depth < 1 || pipeline_depth > 4096 || duration <= 0) {
        fprintf(stderr, "loadgen: CLIENTS 1-1024, PIPELINE 1-4096, SECONDS > 0\n");
        return 64;
    }
    size_t line_length = strlen(line);
    batch_length = (line_length + 1) * (size_t)pipeline_depth;
    batch = malloc(batch_length);
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    if (batch == NULL || samples == NULL) return 1;
    for (int i = 0; i < pipeline_depth; i++) {
        memcpy(batch + i * (line_length + 1), line, line_length);
        batch[i * (line_length + 1) + line_length] = '\n';
    }
    pthread_t *threads = malloc(sizeof(pthread_t) * (size_t)clients);
    if (threads == NULL) return 1;
    double start = now();
    for (int i = 0; i < clients; i++) pthread_create(&threads[i], NULL, client, NULL);
    for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
    double elapsed = now() - start;
    qsort(samples, (size_t)sample_count, sizeof(double), compare);
    double p50 = sample_count ? samples[sample_count / 2] : 0;
    double p99 = sample_count ? samples[(long)((double)(sample_count - 1) * 0.99)] : 0;
    printf("replies=%ld errors=%ld seconds=%.3f p50_us=%.1f p99_us=%.1f\n", replies_total, errors_total, elapsed,
           p50 * 1e6, p99 * 1e6);
    free(threads);
    free(batch);
    free(samples);
    return 0;
}
