/* bench_mem.c: `subbit mem` on the sharded index of a 1.6T-parameter model
 * (Switch-c2048-like expert shapes, 30 shards whose data regions are holes made
 * by ftruncate: headers only, no data). Prints the estimate time (best of 7)
 * against the time to merely read every shard's header bytes, in the same run,
 * and the whole CLI call. Target: under 50 ms. Usage: subbit-bench-mem TMPDIR [SUBBIT] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fmt_model.h"
#include "vfy_mem.h"

#define LAYERS 30
#define E 2048ull
#define D 2080ull
#define FF 6144ull

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_shard(const char *path, int l)
{
    char hdr[1024];
    unsigned long long one = E * FF * D * 2, r = E * D * 2;
    int n = snprintf(hdr, sizeof hdr,
                     "{\"layers.%d.mlp.experts.wi.weight\":{\"dtype\":\"BF16\",\"shape\":[%llu,%llu,%llu],"
                     "\"data_offsets\":[0,%llu]},\"layers.%d.mlp.experts.wo.weight\":{\"dtype\":\"BF16\","
                     "\"shape\":[%llu,%llu,%llu],\"data_offsets\":[%llu,%llu]},"
                     "\"layers.%d.mlp.router.weight\":{\"dtype\":\"BF16\",\"shape\":[%llu,%llu],"
                     "\"data_offsets\":[%llu,%llu]}}",
                     l, E, FF, D, one, l, E, D, FF, one, 2 * one, l, E, D, 2 * one, 2 * one + r);
    while (n % 8)
        hdr[n++] = ' ';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)((unsigned long long)n >> (8 * i));
    int ok = write(fd, le, 8) == 8 && write(fd, hdr, (size_t)n) == n &&
             ftruncate(fd, (off_t)(8 + (unsigned long long)n + 2 * one + r)) == 0;
    close(fd);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: subbit-bench-mem TMPDIR [SUBBIT]\n");
        return 2;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/switch1.6t", argv[1]);
    mkdir(dir, 0755);
    FILE *idx;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!(idx = fopen(path, "w")))
        return 1;
    fprintf(idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    static const char *names[] = { "mlp.experts.wi.weight", "mlp.experts.wo.weight",
                                   "mlp.router.weight" };
    for (int l = 0; l < LAYERS; l++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, l + 1, LAYERS);
        if (write_shard(path, l))
            return 1;
        for (int k = 0; k < 3; k++)
            fprintf(idx, "%s\"layers.%d.%s\":\"model-%05d-of-%05d.safetensors\"", l || k ? "," : "",
                    l, names[k], l + 1, LAYERS);
    }
    fprintf(idx, "}}");
    fclose(idx);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cfg = fopen(path, "w");
    if (!cfg)
        return 1;
    fprintf(cfg, "{\"model_type\":\"switch_transformers\",\"d_model\":2080,\"d_ff\":6144,"
                 "\"d_kv\":64,\"num_heads\":30,\"num_layers\":15,\"num_decoder_layers\":15,"
                 "\"num_experts\":2048,\"num_sparse_encoder_layers\":15,"
                 "\"num_sparse_decoder_layers\":15,\"vocab_size\":32128}\n");
    fclose(cfg);

    double best_read = 1e9, best_est = 1e9;
    unsigned long long params = 0;
    for (int rep = 0; rep < 7; rep++) {
        /* baseline: read the 8-byte length and the JSON header of every shard */
        double t0 = now();
        for (int l = 0; l < LAYERS; l++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, l + 1, LAYERS);
            int fd = open(path, O_RDONLY);
            unsigned char le[8];
            char buf[2048];
            if (fd < 0 || pread(fd, le, 8, 0) != 8)
                return 1;
            unsigned long long n = 0;
            for (int i = 0; i < 8; i++)
                n |= (unsigned long long)le[i] << (8 * i);
            if (n > sizeof buf || pread(fd, buf, n, 8) != (ssize_t)n)
                return 1;
            close(fd);
        }
        double t1 = now();
        struct fmt_open_opts fo = { 0 };
        fo.headers_only = true;
        struct fmt_model *m;
        struct sb_err err = { 0 };
        if (fmt_model_open(&m, dir, &fo, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        struct vfy_mem_model mm;
        struct vfy_mem_est e;
        struct vfy_mem_opts o;
        vfy_mem_opts_init(&o);
        if (vfy_mem_from_fmt(&mm, m, true, &err) || vfy_mem_estimate(&mm, &o, &e, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        params = (unsigned long long)e.params;
        vfy_mem_model_release(&mm);
        fmt_model_free(m);
        double t2 = now();
        if (t1 - t0 < best_read)
            best_read = t1 - t0;
        if (t2 - t1 < best_est)
            best_est = t2 - t1;
    }
    printf("model           %d shards, %.3f T parameters (headers only; data regions are holes)\n",
           LAYERS, (double)params / 1e12);
    printf("read headers    %.2f ms (best of 7): open + pread of every shard header\n",
           best_read * 1e3);
    printf("estimate        %.2f ms (best of 7): open headers-only + parse + estimate\n",
           best_est * 1e3);
    printf("ratio           %.2f x the raw header reads; target < 50 ms: %s\n",
           best_est / best_read, best_est < 0.050 ? "met" : "MISSED");
    if (argc > 2) {
        char cmd[8400];
        snprintf(cmd, sizeof cmd, "%s mem %s -q >/dev/null", argv[2], dir);
        double best_cli = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            if (system(cmd) != 0)
                return 1;
            double t = now() - t0;
            if (t < best_cli)
                best_cli = t;
        }
        printf("subbit mem      %.2f ms (best of 5): the whole CLI process\n", best_cli * 1e3);
    }
    return 0;
}
