/* KRPC load generator for the twisted_dht benchmarks (BEP 5 over UDP loopback).
 *
 * Built at run time by benchmarks/run.py with the system compiler:
 *     cc -O2 -o loadgen benchmarks/loadgen.c
 *
 * Usage:
 *     loadgen [options]                   measure a server
 *     loadgen --prefill [options]         fill a server with peers, then exit
 *     loadgen --echo-server PORT          a trivial C UDP echo (the loadgen's own ceiling)
 *
 * Options:
 *     --host A          server address (default 127.0.0.1)      --port P (required)
 *     --sources N       source sockets, bound to 127.0.0.(20+i) (default 5)
 *     --window W        outstanding queries over all sources (default 64)
 *     --duration S      measured seconds (default 3), after --warmup S (default 0.5)
 *     --timeout S       a query unanswered this long is lost (default 1)
 *     --mix SPEC        e.g. ping=100 or get_peers=80,announce_peer=10,find_node=10,malformed=0
 *     --info-hashes N   info_hashes used by get_peers/announce_peer/prefill (default 200)
 *     --peers N         peers per info_hash for --prefill (default 50)
 *     --echo            the server echoes: any datagram with a known tid is the reply
 *
 * info_hash i is 16 bytes 0x5a then i as 4 bytes big-endian; peer j of source s announces
 * port 10000 + j (prefill spreads the N peers of each info_hash over the sources, and the
 * measured announce_peer re-announces one of them, so every info_hash keeps N peers).
 * announce_peer uses the token a get_peers reply gave this source for that info_hash; when
 * there is none yet a get_peers is sent instead.
 *
 * Prints one JSON object: sent, replies (r), errors (e), lost, replies_per_s, p50_us, p99_us.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 64
#define MAX_WINDOW 4096
#define MAX_IH 4096
#define MAX_TOKEN 64
#define HIST_BINS 200000 /* 1 us bins up to 200 ms */
#define BATCH 64

enum { Q_PING, Q_FIND_NODE, Q_GET_PEERS, Q_ANNOUNCE, Q_MALFORMED, Q_KINDS };
static const char *kindNames[Q_KINDS] = {"ping", "find_node", "get_peers", "announce_peer",
                                         "malformed"};

typedef struct {
    int fd;
    uint8_t id[20];
    struct sockaddr_in local;
    uint8_t tokens[MAX_IH][MAX_TOKEN];
    uint8_t tokenLen[MAX_IH];
} Source;

typedef struct {
    int busy;
    int source;
    int kind;
    int ih;
    uint16_t gen;
    double sent;
} Slot;

static Source *sources;
static int nSources = 5, window = 64, nIH = 200, nPeers = 50, echo = 0;
static double duration = 3.0, warmup = 0.5, timeout_s = 1.0;
static int mixWeights[Q_KINDS];
static int mixTotal;
static struct sockaddr_in server;
static Slot slots[MAX_WINDOW];
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t hist[HIST_BINS + 1];
static uint64_t measuring, sentN, repliesN, errorsN, lostN, malformedN, sentKind[Q_KINDS],
    okKind[Q_KINDS];
static uint64_t prefillQueue; /* next (ih, peer) pair to announce in --prefill */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void infoHash(int i, uint8_t *out) {
    memset(out, 0x5a, 16);
    out[16] = i >> 24;
    out[17] = i >> 16;
    out[18] = i >> 8;
    out[19] = i;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* Appends helpers: p is the write pointer. */
static uint8_t *put(uint8_t *p, const void *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}
#define PUTS(p, lit) put(p, lit, sizeof(lit) - 1)

static uint8_t *putBytes(uint8_t *p, const uint8_t *b, int n) {
    p += sprintf((char *)p, "%d:", n);
    return put(p, b, n);
}

/* Builds a query for slot s; returns its length. */
static int build(uint8_t *buf, int slot, int kind, int ih, int port) {
    Slot *sl = &slots[slot];
    Source *src = &sources[sl->source];
    uint8_t tid[4] = {slot >> 8, slot, sl->gen >> 8, sl->gen};
    uint8_t h[20];
    uint8_t *p = buf;
    p = PUTS(p, "d1:ad2:id20:");
    p = put(p, src->id, 20);
    switch (kind) {
    case Q_PING:
        p = PUTS(p, "e1:q4:ping");
        break;
    case Q_FIND_NODE:
        for (int i = 0; i < 20; i += 4) {
            uint32_t r = next();
            memcpy(h + i, &r, 4);
        }
        p = PUTS(p, "6:target20:");
        p = put(p, h, 20);
        p = PUTS(p, "e1:q9:find_node");
        break;
    case Q_GET_PEERS:
        infoHash(ih, h);
        p = PUTS(p, "9:info_hash20:");
        p = put(p, h, 20);
        p = PUTS(p, "e1:q9:get_peers");
        break;
    case Q_ANNOUNCE:
        infoHash(ih, h);
        p = PUTS(p, "9:info_hash20:");
        p = put(p, h, 20);
        p += sprintf((char *)p, "4:porti%de5:token", port);
        p = putBytes(p, src->tokens[ih], src->tokenLen[ih]);
        p = PUTS(p, "e1:q13:announce_peer");
        break;
    }
    p = PUTS(p, "1:t4:");
    p = put(p, tid, 4);
    p = PUTS(p, "1:y1:qe");
    return p - buf;
}

/* Minimal bencode walker: returns the end of the value at p, or NULL. */
static const uint8_t *skip(const uint8_t *p, const uint8_t *end, int depth) {
    if (p >= end || depth > 16)
        return NULL;
    if (*p == 'i') {
        const uint8_t *e = memchr(p, 'e', end - p);
        return e ? e + 1 : NULL;
    }
    if (*p == 'l' || *p == 'd') {
        p++;
        while (p < end && *p != 'e') {
            p = skip(p, end, depth + 1);
            if (!p)
                return NULL;
        }
        return p < end ? p + 1 : NULL;
    }
    if (*p >= '0' && *p <= '9') {
        long n = 0;
        while (p < end && *p >= '0' && *p <= '9')
            n = n * 10 + (*p++ - '0');
        if (p >= end || *p != ':' || n > end - p - 1)
            return NULL;
        return p + 1 + n;
    }
    return NULL;
}

/* Reads a string at p into s and n; returns the end or NULL. */
static const uint8_t *str(const uint8_t *p, const uint8_t *end, const uint8_t **s, long *n) {
    long len = 0;
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    while (p < end && *p >= '0' && *p <= '9')
        len = len * 10 + (*p++ - '0');
    if (p >= end || *p != ':' || len > end - p - 1)
        return NULL;
    *s = p + 1;
    *n = len;
    return p + 1 + len;
}

typedef struct {
    const uint8_t *tid, *token;
    long tidLen, tokenLen;
    char y;
} Reply;

static int parse(const uint8_t *p, const uint8_t *end, Reply *r) {
    memset(r, 0, sizeof *r);
    if (p >= end || *p++ != 'd')
        return -1;
    while (p < end && *p != 'e') {
        const uint8_t *key;
        long keyLen;
        p = str(p, end, &key, &keyLen);
        if (!p)
            return -1;
        if (keyLen == 1 && key[0] == 't') {
            p = str(p, end, &r->tid, &r->tidLen);
        } else if (keyLen == 1 && key[0] == 'y') {
            const uint8_t *v;
            long n;
            p = str(p, end, &v, &n);
            if (p && n == 1)
                r->y = v[0];
        } else if (keyLen == 1 && key[0] == 'r' && p < end && *p == 'd') {
            p++;
            while (p && p < end && *p != 'e') {
                const uint8_t *k;
                long kn;
                p = str(p, end, &k, &kn);
                if (!p)
                    return -1;
                if (kn == 5 && !memcmp(k, "token", 5) && p < end && *p >= '0' && *p <= '9')
                    p = str(p, end, &r->token, &r->tokenLen);
                else
                    p = skip(p, end, 1);
            }
            if (p)
                p++;
        } else {
            p = skip(p, end, 0);
        }
        if (!p)
            return -1;
    }
    return 0;
}

static int pickKind(void) {
    int x = next() % mixTotal;
    for (int k = 0; k < Q_KINDS; k++) {
        if (x < mixWeights[k])
            return k;
        x -= mixWeights[k];
    }
    return Q_PING;
}

/* Outgoing datagrams are queued per source and sent with one sendmmsg per batch. */
typedef struct {
    int count;
    uint8_t bufs[BATCH][512];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
} Outbox;
static Outbox *outboxes;

static void flush(int source) {
    Outbox *o = &outboxes[source];
    int done = 0;
    while (done < o->count) {
        int n = sendmmsg(sources[source].fd, o->msgs + done, o->count - done, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)
                continue;
            die("sendmmsg");
        }
        done += n;
    }
    o->count = 0;
}

static void sendTo(int source, const uint8_t *buf, int len) {
    Outbox *o = &outboxes[source];
    if (o->count == BATCH)
        flush(source);
    int i = o->count++;
    memcpy(o->bufs[i], buf, len);
    o->iov[i].iov_base = o->bufs[i];
    o->iov[i].iov_len = len;
    memset(&o->msgs[i].msg_hdr, 0, sizeof o->msgs[i].msg_hdr);
    o->msgs[i].msg_hdr.msg_iov = &o->iov[i];
    o->msgs[i].msg_hdr.msg_iovlen = 1;
    o->msgs[i].msg_hdr.msg_name = &server;
    o->msgs[i].msg_hdr.msg_namelen = sizeof server;
}

static void flushAll(void) {
    for (int s = 0; s < nSources; s++)
        if (outboxes[s].count)
            flush(s);
}

static const char malformed[][48] = {
    "d1:t2:xx1:y1:q1:q4:ping1:ai3ee",     /* a is not a dict: 203 */
    "this is not bencoding",              /* dropped */
    "d1:ad2:id3:abce1:q4:ping1:t2:xx1:y1:qe", /* short id: 203 */
    "i-0e",                               /* non-canonical */
};

/* Fills slot with a new query and sends it. prefill: announce the next pair or finish. */
static int issue(int slot, int prefill) {
    uint8_t buf[512];
    Slot *sl = &slots[slot];
    int kind, ih = 0, port = 0;
    if (prefill) {
        /* For each pair: the source first needs a token (get_peers), then announces. */
        uint64_t total = (uint64_t)nIH * nPeers;
        if (prefillQueue >= total)
            return 0;
        uint64_t q = prefillQueue;
        ih = q % nIH;
        int peer = q / nIH;
        sl->source = peer % nSources;
        port = 10000 + peer / nSources;
        kind = sources[sl->source].tokenLen[ih] ? Q_ANNOUNCE : Q_GET_PEERS;
        if (kind == Q_ANNOUNCE)
            prefillQueue++;
    } else {
        sl->source = next() % nSources;
        for (;;) {
            kind = pickKind();
            if (kind != Q_MALFORMED)
                break;
            const char *m = malformed[next() % 4];
            sendTo(sl->source, (const uint8_t *)m, strlen(m));
            if (measuring)
                malformedN++;
        }
        ih = next() % nIH;
        if (kind == Q_ANNOUNCE) {
            if (!sources[sl->source].tokenLen[ih])
                kind = Q_GET_PEERS;
            int perSource = (nPeers + nSources - 1) / nSources;
            port = 10000 + next() % perSource;
        }
    }
    sl->busy = 1;
    sl->kind = kind;
    sl->ih = ih;
    sl->gen++;
    int len = build(buf, slot, kind, ih, port);
    sl->sent = now();
    sendTo(sl->source, buf, len);
    if (measuring) {
        sentN++;
        sentKind[kind]++;
    }
    return 1;
}

static void record(double latency) {
    long us = (long)(latency * 1e6);
    hist[us < HIST_BINS ? us : HIST_BINS]++;
}

static long percentile(double q) {
    uint64_t total = 0, seen = 0;
    for (int i = 0; i <= HIST_BINS; i++)
        total += hist[i];
    if (!total)
        return -1;
    for (int i = 0; i <= HIST_BINS; i++) {
        seen += hist[i];
        if (seen >= q * total)
            return i;
    }
    return HIST_BINS;
}

static int echoServer(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    printf("listening %d\n", port);
    fflush(stdout);
    alarm(30 * 60); /* bounded in time even if whoever started it dies */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    static uint8_t bufs[BATCH][8192];
    struct sockaddr_in from[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recvmmsg");
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        sendmmsg(fd, msgs, n, 0);
    }
    return 0;
}

static void parseMix(const char *spec) {
    char copy[256];
    snprintf(copy, sizeof copy, "%s", spec);
    memset(mixWeights, 0, sizeof mixWeights);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        int w = eq ? atoi(eq + 1) : 100;
        if (eq)
            *eq = 0;
        int k;
        for (k = 0; k < Q_KINDS && strcmp(tok, kindNames[k]); k++)
            ;
        if (k == Q_KINDS) {
            fprintf(stderr, "unknown query kind %s\n", tok);
            exit(2);
        }
        mixWeights[k] = w;
    }
    mixTotal = 0;
    for (int k = 0; k < Q_KINDS; k++)
        mixTotal += mixWeights[k];
    if (mixTotal <= 0 || mixTotal == mixWeights[Q_MALFORMED]) {
        fprintf(stderr, "the mix needs a query kind that is answered\n");
        exit(2);
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, prefill = 0;
    parseMix("ping=100");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--echo-server"))
            return echoServer(atoi(v));
        else if (!strcmp(a, "--prefill"))
            prefill = 1;
        else if (!strcmp(a, "--echo"))
            echo = 1;
        else if (!strcmp(a, "--host"))
            host = v, i++;
        else if (!strcmp(a, "--port"))
            port = atoi(v), i++;
        else if (!strcmp(a, "--sources"))
            nSources = atoi(v), i++;
        else if (!strcmp(a, "--window"))
            window = atoi(v), i++;
        else if (!strcmp(a, "--duration"))
            duration = atof(v), i++;
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v), i++;
        else if (!strcmp(a, "--timeout"))
            timeout_s = atof(v), i++;
        else if (!strcmp(a, "--mix"))
            parseMix(v), i++;
        else if (!strcmp(a, "--info-hashes"))
            nIH = atoi(v), i++;
        else if (!strcmp(a, "--peers"))
            nPeers = atoi(v), i++;
        else {
            fprintf(stderr, "unknown option %s (see the comment at the top of loadgen.c)\n", a);
            return 2;
        }
    }
    if (!port || nSources < 1 || nSources > MAX_SOURCES || window < 1 || window > MAX_WINDOW ||
        nIH < 1 || nIH > MAX_IH) {
        fprintf(stderr, "bad options\n");
        return 2;
    }
    server.sin_family = AF_INET;
    server.sin_port = htons(port);
    inet_pton(AF_INET, host, &server.sin_addr);
    sources = calloc(nSources, sizeof *sources);
    outboxes = calloc(nSources, sizeof *outboxes);
    struct pollfd *pfds = calloc(nSources, sizeof *pfds);
    rng ^= (uint64_t)getpid() << 20;
    for (int s = 0; s < nSources; s++) {
        Source *src = &sources[s];
        src->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (src->fd < 0)
            die("socket");
        int size = 4 << 20;
        setsockopt(src->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        src->local.sin_family = AF_INET;
        src->local.sin_addr.s_addr = htonl(0x7f000000 | (20 + s)); /* 127.0.0.(20+s) */
        if (bind(src->fd, (struct sockaddr *)&src->local, sizeof src->local) < 0)
            die("bind");
        for (int i = 0; i < 20; i++)
            src->id[i] = next();
        pfds[s].fd = src->fd;
        pfds[s].events = POLLIN;
    }

    double start = now(), measureStart = start + warmup, stop = measureStart + duration;
    double lastScan = start;
    if (prefill) {
        measureStart = 1e18;
        stop = start + 60; /* a server that stopped answering must not hang the run */
        timeout_s = 0.5;
    } else if (warmup <= 0) {
        measuring = 1;
    }
    int active = 0;
    for (int i = 0; i < window; i++)
        active += issue(i, prefill);
    flushAll();

    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    static uint8_t bufs[BATCH][8192];
    for (;;) {
        double t = now();
        if (!measuring && t >= measureStart) {
            measuring = 1;
            measureStart = t;
        }
        if (t >= stop || (prefill && active == 0))
            break;
        if (t - lastScan > 0.05) { /* expire lost queries */
            lastScan = t;
            for (int i = 0; i < window; i++) {
                if (slots[i].busy && t - slots[i].sent > timeout_s) {
                    slots[i].busy = 0;
                    active--;
                    if (measuring)
                        lostN++;
                    if (prefill && slots[i].kind == Q_ANNOUNCE)
                        prefillQueue--; /* crude: retry one pair */
                    active += issue(i, prefill);
                }
            }
            flushAll();
        }
        if (poll(pfds, nSources, 20) <= 0)
            continue;
        for (int s = 0; s < nSources; s++) {
            if (!(pfds[s].revents & POLLIN))
                continue;
            for (;;) {
                for (int i = 0; i < BATCH; i++) {
                    iov[i].iov_base = bufs[i];
                    iov[i].iov_len = sizeof bufs[i];
                    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
                    msgs[i].msg_hdr.msg_iov = &iov[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                int n = recvmmsg(sources[s].fd, msgs, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                    break;
                double arrived = now();
                for (int m = 0; m < n; m++) {
                    Reply r;
                    const uint8_t *b = bufs[m];
                    if (parse(b, b + msgs[m].msg_len, &r) < 0 || r.tidLen != 4)
                        continue;
                    if (!echo && r.y != 'r' && r.y != 'e')
                        continue; /* a query from the server (e.g. a ping): ignore */
                    int slot = r.tid[0] << 8 | r.tid[1];
                    uint16_t gen = r.tid[2] << 8 | r.tid[3];
                    if (slot >= window || !slots[slot].busy || slots[slot].gen != gen ||
                        slots[slot].source != s)
                        continue;
                    Slot *sl = &slots[slot];
                    sl->busy = 0;
                    active--;
                    if (r.y == 'r' || echo) {
                        if (r.token && r.tokenLen <= MAX_TOKEN && sl->kind == Q_GET_PEERS) {
                            memcpy(sources[s].tokens[sl->ih], r.token, r.tokenLen);
                            sources[s].tokenLen[sl->ih] = r.tokenLen;
                        }
                        if (measuring) {
                            repliesN++;
                            okKind[sl->kind]++;
                        }
                    } else {
                        if (measuring)
                            errorsN++;
                        if (prefill && sl->kind == Q_ANNOUNCE)
                            sources[s].tokenLen[sl->ih] = 0; /* refetch the token */
                    }
                    if (measuring && sl->sent >= measureStart)
                        record(arrived - sl->sent);
                    active += issue(slot, prefill);
                }
                flushAll();
            }
        }
    }
    if (prefill) {
        printf("{\"prefilled\": %llu}\n", (unsigned long long)prefillQueue);
        return active == 0 ? 0 : 1;
    }
    double elapsed = now() - measureStart;
    printf("{\"sent\": %llu, \"replies\": %llu, \"errors\": %llu, \"lost\": %llu, "
           "\"malformed_sent\": %llu, \"seconds\": %.3f, \"replies_per_s\": %.0f, "
           "\"loss\": %.5f, \"p50_us\": %ld, \"p99_us\": %ld",
           (unsigned long long)sentN, (unsigned long long)repliesN, (unsigned long long)errorsN,
           (unsigned long long)lostN, (unsigned long long)malformedN, elapsed,
           (repliesN + errorsN) / elapsed, sentN ? (double)lostN / sentN : 0.0,
           percentile(0.5), percentile(0.99));
    for (int k = 0; k < Q_MALFORMED; k++)
        printf(", \"ok_%s\": %llu", kindNames[k], (unsigned long long)okKind[k]);
    printf("}\n");
    return 0;
}
