/* floor_nng: what nng itself costs on tcp loopback between two processes, no runtime.
 *
 *   latency   req/rep: the parent (req) sends a 100-byte request, the child (rep) sends it
 *             back; ROUNDTRIPS round trips per repeat, after 200 untimed ones.
 *             Figure: microseconds per round trip (repeat wall time / ROUNDTRIPS).
 *   transfer  pair1 (mono), one way: the parent sends a small "go", the child sends MESSAGES
 *             messages of 8 MiB (nng_send from one prefilled buffer, so one copy into each
 *             message, as a runtime serialising a value would make), the parent receives
 *             them (nng_recvmsg, no copy out; it reads the first and last byte).
 *             Figure: MB/s = MESSAGES * 8 MiB / 1e6 / seconds from "go" to the last byte.
 *             One untimed warm-up round of 10 messages comes first.
 *
 * The parent listens on tcp://127.0.0.1:0 and starts this same binary (posix_spawn of
 * /proc/self/exe) as the child, which dials. Prints one JSON line per figure:
 *   {"bench": "latency", "system": "floor", "unit": "us", ...}
 *   {"bench": "transfer", "system": "floor", "unit": "MB/s", ...}
 *
 * Usage: floor_nng [--quick] [--repeat N] [--roundtrips N] [--messages N]
 *        (--quick: 1 repeat of 200 round trips and 1 repeat of 20 messages)
 */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include <spawn.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

#define MSG_SMALL 100
#define MSG_BIG   (8u << 20)
#define WARM_RT   200
#define WARM_MSGS 10

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int check(int rv, const char *what)
{
    if (rv != 0) {
        fprintf(stderr, "floor_nng: %s: %s\n", what, nng_strerror(rv));
        exit(1);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static double quantile(double *v, long n, double q)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void min_max(const double *v, long n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (long i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

/* ---- child roles ---- */

/* rep: echo every request; a 1-byte request means "quit" (echoed, then exit). */
static int child_rep(const char *url)
{
    nng_socket s;
    check(nng_rep0_open(&s), "rep open");
    check(nng_dial(s, url, NULL, 0), "rep dial");
    for (;;) {
        nng_msg *m;
        check(nng_recvmsg(s, &m, 0), "rep recv");
        int quit = nng_msg_len(m) == 1;
        check(nng_sendmsg(s, m, 0), "rep send");
        if (quit)
            break;
    }
    nng_msleep(50); /* let the last reply leave before closing */
    nng_close(s);
    return 0;
}

/* pair1 sender: on a 4-byte count N, send N big messages; on "q", exit. */
static int child_send(const char *url)
{
    nng_socket s;
    check(nng_pair1_open(&s), "pair open");
    check(nng_dial(s, url, NULL, 0), "pair dial");
    unsigned char *buf = malloc(MSG_BIG);
    if (!buf)
        return 1;
    for (size_t i = 0; i < MSG_BIG; i++)
        buf[i] = (unsigned char)(i * 31u);
    for (;;) {
        nng_msg *m;
        check(nng_recvmsg(s, &m, 0), "pair recv");
        if (nng_msg_len(m) != 4) {
            nng_msg_free(m);
            break;
        }
        uint32_t n;
        memcpy(&n, nng_msg_body(m), 4);
        nng_msg_free(m);
        for (uint32_t i = 0; i < n; i++)
            check(nng_send(s, buf, MSG_BIG, 0), "pair send");
    }
    free(buf);
    nng_close(s);
    return 0;
}

/* ---- parent ---- */

static pid_t spawn_child(const char *self, const char *role, const char *url)
{
    char *args[] = { (char *)self, (char *)role, (char *)url, NULL };
    pid_t pid;
    int rv = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
    if (rv != 0) {
        fprintf(stderr, "floor_nng: posix_spawn: %s\n", strerror(rv));
        exit(1);
    }
    return pid;
}

static void listen_local(nng_socket s, char *url, size_t urlsz)
{
    nng_listener l;
    int port;
    check(nng_listener_create(&l, s, "tcp://127.0.0.1:0"), "listener create");
    check(nng_listener_start(l, 0), "listen");
    check(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), "bound port");
    snprintf(url, urlsz, "tcp://127.0.0.1:%d", port);
}

static void wait_child(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor_nng: child %d failed\n", (int)pid);
        exit(1);
    }
}

static void bench_latency(const char *self, long repeats, long roundtrips, int quick)
{
    nng_socket s;
    char url[64];
    check(nng_req0_open(&s), "req open");
    check(nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), "resend time");
    check(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000), "recv timeout");
    listen_local(s, url, sizeof(url));
    pid_t pid = spawn_child(self, "--child-rep", url);

    unsigned char req[MSG_SMALL];
    memset(req, 'x', sizeof(req));
    double *per = malloc((size_t)repeats * sizeof(double));
    double *rts = malloc((size_t)(repeats * roundtrips) * sizeof(double));
    if (!per || !rts)
        exit(1);
    for (long i = 0; i < WARM_RT + repeats * roundtrips; i++) {
        long r = i - WARM_RT;
        double t0 = now_us();
        check(nng_send(s, req, sizeof(req), 0), "req send");
        nng_msg *m;
        check(nng_recvmsg(s, &m, 0), "req recv");
        double dt = now_us() - t0;
        if (nng_msg_len(m) != MSG_SMALL) {
            fprintf(stderr, "floor_nng: reply of %zu bytes\n", nng_msg_len(m));
            exit(1);
        }
        nng_msg_free(m);
        if (r >= 0)
            rts[r] = dt;
    }
    /* Per repeat: wall time / round trips (sum of the round trips, which run back to back). */
    for (long r = 0; r < repeats; r++) {
        double sum = 0;
        for (long i = 0; i < roundtrips; i++)
            sum += rts[r * roundtrips + i];
        per[r] = sum / (double)roundtrips;
    }
    check(nng_send(s, "q", 1, 0), "quit send");
    nng_msg *m;
    check(nng_recvmsg(s, &m, 0), "quit recv");
    nng_msg_free(m);
    wait_child(pid);
    nng_close(s);

    double lo, hi;
    min_max(per, repeats, &lo, &hi);
    double med = median(per, repeats);
    double p50 = quantile(rts, repeats * roundtrips, 0.5);
    double p99 = quantile(rts, repeats * roundtrips, 0.99);
    printf("{\"bench\": \"latency\", \"system\": \"floor\", \"unit\": \"us\", \"median\": %.2f, "
           "\"min\": %.2f, \"max\": %.2f, \"repeats\": %ld, \"roundtrips\": %ld, "
           "\"msg_bytes\": %d, \"pattern\": \"nng req/rep, tcp loopback, two processes\", "
           "\"rt_p50_us\": %.2f, \"rt_p99_us\": %.2f%s}\n",
           med, lo, hi, repeats, roundtrips, MSG_SMALL, p50, p99, quick ? ", \"quick\": true" : "");
    fflush(stdout);
    free(per);
    free(rts);
}

/* Asks the child for n messages and receives them; returns microseconds. */
static double transfer_round(nng_socket s, uint32_t n)
{
    unsigned sink = 0;
    double t0 = now_us();
    check(nng_send(s, &n, 4, 0), "go send");
    for (uint32_t i = 0; i < n; i++) {
        nng_msg *m;
        check(nng_recvmsg(s, &m, 0), "pair recv");
        if (nng_msg_len(m) != MSG_BIG) {
            fprintf(stderr, "floor_nng: message of %zu bytes\n", nng_msg_len(m));
            exit(1);
        }
        const unsigned char *b = nng_msg_body(m);
        sink += b[0] + b[MSG_BIG - 1];
        nng_msg_free(m);
    }
    double dt = now_us() - t0;
    if (sink == 0xFFFFFFFFu) /* keeps the reads */
        fprintf(stderr, ".");
    return dt;
}

static void bench_transfer(const char *self, long repeats, long messages, int quick)
{
    nng_socket s;
    char url[64];
    check(nng_pair1_open(&s), "pair open");
    check(nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, (size_t)MSG_BIG + 4096), "recv max size");
    check(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000), "recv timeout");
    listen_local(s, url, sizeof(url));
    pid_t pid = spawn_child(self, "--child-send", url);

    double *mbs = malloc((size_t)repeats * sizeof(double));
    if (!mbs)
        exit(1);
    transfer_round(s, WARM_MSGS);
    for (long r = 0; r < repeats; r++) {
        double us = transfer_round(s, (uint32_t)messages);
        mbs[r] = (double)messages * MSG_BIG / us; /* bytes per us = MB/s */
    }
    check(nng_send(s, "q", 1, 0), "quit send");
    wait_child(pid);
    nng_close(s);

    double lo, hi;
    min_max(mbs, repeats, &lo, &hi);
    double med = median(mbs, repeats);
    printf("{\"bench\": \"transfer\", \"system\": \"floor\", \"unit\": \"MB/s\", \"median\": %.1f, "
           "\"min\": %.1f, \"max\": %.1f, \"repeats\": %ld, \"messages\": %ld, "
           "\"msg_bytes\": %u, \"pattern\": \"nng pair1 mono one-way, tcp loopback, two "
           "processes\"%s}\n",
           med, lo, hi, repeats, messages, MSG_BIG, quick ? ", \"quick\": true" : "");
    fflush(stdout);
    free(mbs);
}

static long parse_pos(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 10000000) {
        fprintf(stderr, "floor_nng: %s must be a positive integer, not \"%s\"\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--child-rep"))
        return child_rep(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--child-send"))
        return child_send(argv[2]);

    long repeats = 5, roundtrips = 2000, messages = 100;
    int quick = 0, have_rt = 0, have_msgs = 0, have_rep = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeats = parse_pos(argv[++i], "--repeat"), have_rep = 1;
        else if (!strcmp(argv[i], "--roundtrips") && i + 1 < argc)
            roundtrips = parse_pos(argv[++i], "--roundtrips"), have_rt = 1;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            messages = parse_pos(argv[++i], "--messages"), have_msgs = 1;
        else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: floor_nng [--quick] [--repeat N] [--roundtrips N] [--messages N]\n"
                    "The nng floor: req/rep round trips and bandwidth between two processes,\n"
                    "with no tern code, printed as JSON lines (see bench/README.md).\n");
            return help ? 0 : 2;
        }
    }
    if (quick) {
        repeats = have_rep ? repeats : 1;
        roundtrips = have_rt ? roundtrips : 200;
        messages = have_msgs ? messages : 20;
    }
    bench_latency(argv[0], repeats, roundtrips, quick);
    bench_transfer(argv[0], repeats, messages, quick);
    return 0;
}
