/*
 * sender.c: load generator and measuring helpers for benches/compare/run.sh.
 *
 * One small C program, so that nothing on the measuring side is slower than the
 * receiver under test (a Python sender tops out far below the peers' rates).
 *
 *   sender tcp  HOST PORT COUNT          COUNT RFC 5424 lines (~200 bytes, LF-framed) over one
 *                                        TCP connection, as fast as the receiver accepts them.
 *   sender udp  HOST PORT RATE SECONDS   RATE datagrams/s (one RFC 5424 message each) for SECONDS,
 *                                        paced every millisecond; prints how many were sent.
 *   sender sink PORT                     trivial TCP reader: accepts one connection, reads and
 *                                        discards until EOF (measures the sender's own ceiling).
 *   sender gen  FILE BYTES               writes ~200-byte application log lines until FILE holds
 *                                        at least BYTES; every 10th line is an ERROR line.
 *   sender count FILE TARGET IDLE TIMEOUT
 *                                        follows FILE as it grows and counts its lines; returns once
 *                                        it holds TARGET lines, or it has not grown for IDLE seconds
 *                                        (after its first byte), or after TIMEOUT seconds.
 *
 * Every command prints one line of key=value pairs on stdout for the script to parse; times are
 * CLOCK_REALTIME epoch seconds so the script can subtract its own `date +%s.%N` stamps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_LEN 200 /* bytes per line, LF included */
#define RING 8192    /* distinct pre-built lines; the TCP stream repeats them */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This process's own CPU seconds (user + system): the harness subtracts the helpers' share when it
 * estimates how busy the rest of the machine was during a run. */
static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Pads `line` (of length `len`) with filler words to LINE_LEN - 1 bytes, then ends it with LF.
 * Filler is words, not spaces, so no receiver can shorten the line by trimming whitespace. */
static void pad_line(char *line, int len) {
    static const char filler[] = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do";
    int f = 0;
    while (len < LINE_LEN - 1) {
        line[len++] = filler[f];
        f = (f + 1) % (int)(sizeof filler - 1);
    }
    line[LINE_LEN - 1] = '\n';
}

/* One RFC 5424 message with structured data: what a modern app or relay sends. Varying host,
 * fractional seconds, ids and numbers keep a parser honest (no single-line caching). */
static void syslog_line(char *line, long i) {
    int len = snprintf(line, LINE_LEN,
                       "<134>1 2026-01-01T12:%02ld:%02ld.%03ldZ web-%ld checkout %ld ORDER "
                       "[meta@32473 seq=\"%ld\" region=\"eu-west-1\"] order %ld processed in %ld ms",
                       (i / 60000) % 60, (i / 1000) % 60, i % 1000, i % 8, 4000 + i % 97, i,
                       100000 + i, i % 500);
    pad_line(line, len);
}

/* One application log line: ISO timestamp, level, logger, message. Every 10th is an ERROR (the
 * lines S4's filters keep). */
static int app_line(char *line, long i) {
    int error = (i % 10) == 9;
    int len;
    if (error)
        len = snprintf(line, LINE_LEN,
                       "2026-01-01T12:%02ld:%02ld.%03ldZ ERROR [worker-%ld] payment: charge %ld failed: "
                       "upstream timeout after %ld ms (gateway=psp-%ld)",
                       (i / 60000) % 60, (i / 1000) % 60, i % 1000, i % 16, 100000 + i, i % 3000,
                       i % 4);
    else
        len = snprintf(line, LINE_LEN,
                       "2026-01-01T12:%02ld:%02ld.%03ldZ INFO [worker-%ld] checkout: order %ld processed "
                       "for customer %ld in %ld ms",
                       (i / 60000) % 60, (i / 1000) % 60, i % 1000, i % 16, 100000 + i, i * 7 % 100000,
                       i % 500);
    pad_line(line, len);
    return error;
}

static char *ring_of_syslog_lines(void) {
    char *ring = malloc((size_t)RING * LINE_LEN);
    if (!ring) die("malloc");
    for (long i = 0; i < RING; i++) syslog_line(ring + i * LINE_LEN, i);
    return ring;
}

static struct sockaddr_in address(const char *host, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        exit(2);
    }
    return sa;
}

static int cmd_tcp(const char *host, int port, long count) {
    char *ring = ring_of_syslog_lines();
    struct sockaddr_in sa = address(host, port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    double start = now();
    /* Write whole rings (1.6 MB per call): one syscall per ~8,000 lines. */
    size_t total = (size_t)count * LINE_LEN, sent = 0;
    while (sent < total) {
        size_t off = sent % ((size_t)RING * LINE_LEN);
        size_t len = (size_t)RING * LINE_LEN - off;
        if (len > total - sent) len = total - sent;
        ssize_t n = write(fd, ring + off, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        sent += (size_t)n;
    }
    double end = now();
    /* A plain close still delivers what the kernel holds; the receiver's output is what counts. */
    close(fd);
    printf("lines=%ld bytes=%zu start=%.6f end=%.6f seconds=%.6f msg_per_s=%.0f cpu=%.3f\n", count,
           total, start, end, end - start, count / (end - start), cpu_self());
    return 0;
}

static int cmd_udp(const char *host, int port, long rate, double seconds) {
    char *ring = ring_of_syslog_lines();
    struct sockaddr_in sa = address(host, port);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    enum { BATCH = 256 };
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    long sent = 0, failed = 0, target_total = (long)(rate * seconds);
    double start = now();
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    struct timespec mono0 = tick;
    while (sent + failed < target_total) {
        /* Pace: by now, rate * elapsed datagrams should be out. */
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double elapsed = (t.tv_sec - mono0.tv_sec) + (t.tv_nsec - mono0.tv_nsec) / 1e9;
        long due = (long)(elapsed * rate);
        if (due > target_total) due = target_total;
        while (sent + failed < due) {
            int n = (int)(due - sent - failed);
            if (n > BATCH) n = BATCH;
            for (int k = 0; k < n; k++) {
                /* A datagram is the line without its LF (one message per datagram). */
                iov[k].iov_base = ring + ((sent + failed + k) % RING) * LINE_LEN;
                iov[k].iov_len = LINE_LEN - 1;
                msgs[k].msg_hdr.msg_iov = &iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            int r = sendmmsg(fd, msgs, n, 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                /* ENOBUFS/ECONNREFUSED: count as not sent and go on. */
                failed += n;
                continue;
            }
            sent += r;
        }
        tick.tv_nsec += 1000000;
        if (tick.tv_nsec >= 1000000000) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
    double end = now();
    printf("sent=%ld failed=%ld start=%.6f end=%.6f seconds=%.6f msg_per_s=%.0f cpu=%.3f\n", sent,
           failed, start, end, end - start, sent / (end - start), cpu_self());
    return 0;
}

static int cmd_sink(int port) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    int one = 1, buf = 4 << 20;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_in sa = address("127.0.0.1", port);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(lfd, 1) < 0) die("listen");
    printf("listening\n");
    fflush(stdout);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    size_t cap = 4 << 20, total = 0;
    char *data = malloc(cap);
    double start = now();
    ssize_t n;
    while ((n = read(fd, data, cap)) > 0) total += (size_t)n;
    double end = now();
    close(fd);
    printf("bytes=%zu seconds=%.6f\n", total, end - start);
    return 0;
}

static int cmd_gen(const char *path, long long bytes) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die(path);
    enum { CHUNK = 8000 }; /* a multiple of 10: see the end */
    char *chunk = malloc((size_t)CHUNK * LINE_LEN);
    long long written = 0;
    long i = 0, errors = 0;
    while (written < bytes) {
        for (int k = 0; k < CHUNK; k++, i++) errors += app_line(chunk + (size_t)k * LINE_LEN, i);
        size_t len = (size_t)CHUNK * LINE_LEN;
        if (write(fd, chunk, len) != (ssize_t)len) die("write");
        written += (long long)len;
    }
    close(fd);
    /* CHUNK is a multiple of 10, so the file ends with an ERROR line: S4's output is complete
     * exactly when the whole input has been read. */
    printf("lines=%ld bytes=%lld error_lines=%ld\n", i, written, errors);
    return 0;
}

static int cmd_count(const char *path, long target, double idle, double timeout) {
    double start = now(), last_growth = start, end;
    int fd = -1;
    off_t offset = 0;
    long lines = 0;
    size_t cap = 4 << 20;
    char *buf = malloc(cap);
    const char *why = "timeout";
    for (;;) {
        if (fd < 0) fd = open(path, O_RDONLY);
        int grew = 0;
        if (fd >= 0) {
            ssize_t n;
            while ((n = pread(fd, buf, cap, offset)) > 0) {
                offset += n;
                grew = 1;
                for (char *p = buf, *e = buf + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
                    lines++;
            }
        }
        double t = now();
        if (grew) last_growth = t;
        if (target > 0 && lines >= target) {
            why = "target";
            end = last_growth;
            break;
        }
        if (offset > 0 && t - last_growth >= idle) {
            why = "idle";
            end = last_growth;
            break;
        }
        if (t - start >= timeout) {
            end = t;
            break;
        }
        /* Poll every 2 ms: fine-grained enough for ~1 s runs, negligible CPU. */
        usleep(2000);
    }
    printf("lines=%ld bytes=%lld end=%.6f reason=%s cpu=%.3f\n", lines, (long long)offset, end, why,
           cpu_self());
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "tcp")) return cmd_tcp(argv[2], atoi(argv[3]), atol(argv[4]));
    if (argc >= 6 && !strcmp(argv[1], "udp"))
        return cmd_udp(argv[2], atoi(argv[3]), atol(argv[4]), atof(argv[5]));
    if (argc >= 3 && !strcmp(argv[1], "sink")) return cmd_sink(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "gen")) return cmd_gen(argv[2], atoll(argv[3]));
    if (argc >= 6 && !strcmp(argv[1], "count"))
        return cmd_count(argv[2], atol(argv[3]), atof(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: see the comment at the top of sender.c\n");
    return 2;
}
