/* png_stats.c: what a screenshot shows, for CLI tests (t0810-report-chromium):
 *   png_stats FILE.png [RRGGBB...]
 * prints "WIDTH HEIGHT COLOURS OTHER" (distinct RGB colours; pixels that are
 * not the most common colour, i.e. not background), then for each RRGGBB
 * given, the number of pixels of exactly that colour. Reads 8-bit RGB/RGBA,
 * non-interlaced PNGs (what Chromium writes); anything else exits 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

static int fail(const char *path, const char *what)
{
    fprintf(stderr, "png_stats: %s: %s\n", path, what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fail("?", "usage: png_stats FILE.png [RRGGBB...]");
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return fail(argv[1], "cannot open");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *png = malloc((size_t)n), *idat = malloc((size_t)n);
    if (!png || !idat || fread(png, 1, (size_t)n, f) != (size_t)n || n < 33 ||
        memcmp(png, "\x89PNG\r\n\x1a\n", 8))
        return fail(argv[1], "not a PNG");
    fclose(f);
    uint32_t w = be32(png + 16), h = be32(png + 20);
    const int depth = png[24], type = png[25], interlace = png[28];
    if (depth != 8 || (type != 2 && type != 6) || interlace || w == 0 || h == 0 || w > 20000 ||
        h > 40000)
        return fail(argv[1], "not an 8-bit RGB/RGBA non-interlaced PNG");
    size_t ni = 0;
    for (long p = 8; p + 12 <= n;) {          /* chunks: length, type, data, crc */
        uint32_t len = be32(png + p);
        if (len > (uint32_t)(n - p - 12))
            return fail(argv[1], "truncated chunk");
        if (!memcmp(png + p + 4, "IDAT", 4)) {
            memcpy(idat + ni, png + p + 8, len);
            ni += len;
        }
        p += 12 + (long)len;
    }
    const size_t bpp = type == 6 ? 4 : 3, stride = (size_t)w * bpp;
    uLongf raw_len = (uLongf)((stride + 1) * h);
    uint8_t *raw = malloc(raw_len), *img = malloc(stride * h);
    if (!raw || !img || uncompress(raw, &raw_len, idat, ni) != Z_OK ||
        raw_len != (stride + 1) * h)
        return fail(argv[1], "bad image data");
    for (size_t y = 0; y < h; y++) {          /* undo the per-row filters (PNG spec 9) */
        const uint8_t ft = raw[y * (stride + 1)], *src = raw + y * (stride + 1) + 1;
        uint8_t *row = img + y * stride, *up = y ? row - stride : NULL;
        for (size_t i = 0; i < stride; i++) {
            int a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0;
            int c = up && i >= bpp ? up[i - bpp] : 0, v = src[i];
            switch (ft) {
            case 0: break;
            case 1: v += a; break;
            case 2: v += b; break;
            case 3: v += (a + b) / 2; break;
            case 4: v += paeth(a, b, c); break;
            default: return fail(argv[1], "bad filter type");
            }
            row[i] = (uint8_t)v;
        }
    }
    /* distinct colours in a 2^24-bit map; the most common one is the background */
    uint8_t *seen = calloc(1 << 21, 1);
    uint32_t *count = calloc(1 << 24, sizeof *count);
    if (!seen || !count)
        return fail(argv[1], "out of memory");
    size_t colours = 0, top = 0;
    uint32_t bg = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        const uint8_t *px = img + i * bpp;
        const uint32_t rgb = (uint32_t)px[0] << 16 | (uint32_t)px[1] << 8 | px[2];
        if (!(seen[rgb >> 3] & (1 << (rgb & 7)))) {
            seen[rgb >> 3] |= (uint8_t)(1 << (rgb & 7));
            colours++;
        }
        if (++count[rgb] > top) {
            top = count[rgb];
            bg = rgb;
        }
    }
    printf("%u %u %zu %zu\n", w, h, colours, (size_t)w * h - count[bg]);
    for (int i = 2; i < argc; i++)
        printf("%s %u\n", argv[i], count[strtoul(argv[i], NULL, 16) & 0xFFFFFF]);
    free(count);
    free(seen);
    free(img);
    free(raw);
    free(idat);
    free(png);
    return 0;
}
