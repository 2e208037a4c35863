/* fuzz_util.h: what the libFuzzer targets share. Readers take paths, so an
 * input is written as a file (or, for a folder, as several: the parts of the
 * input between FUZZ_SEP lines) into a private scratch folder made once and
 * removed at exit. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* between the parts of a multi-file input (tools/fuzz writes seeds so) */
#define FUZZ_SEP "\n--subbit-fuzz-part--\n"
#define FUZZ_MAX_PARTS 8

/*! fuzz_path() : dir/name inside the scratch folder (static, 4 rotating buffers). */
const char *fuzz_path(const char *name);
/*! fuzz_write() : name := the n bytes at p. */
void fuzz_write(const char *name, const uint8_t *p, size_t n);
/*! fuzz_write_parts() : split d at FUZZ_SEP; part i becomes names[i], names
 *  past the last part are removed (absent files are cases too). Returns the
 *  number of parts. */
size_t fuzz_write_parts(const uint8_t *d, size_t n, const char *const *names, size_t n_names);
/*! fuzz_touch() : read every byte of n at p (so ASan sees each access). */
uint64_t fuzz_touch(const void *p, uint64_t n);

struct fmt_model;
/*! fuzz_use_model() : what the commands do with an opened model, on the
 *  reader's output: touch the tensor bytes, plan a conversion to every
 *  container and gather the small targets (as convert does), estimate its
 *  memory (mem), bind it to the reference core (ppl/run/verify). */
void fuzz_use_model(const struct fmt_model *m);
/*! fuzz_open_model() : fmt_model_open(path) (headers only if asked) and, if
 *  it opens, fuzz_use_model; then free. */
void fuzz_open_model(const char *path, int headers_only);

struct fmt_vocab;
/*! fuzz_use_vocab() : build a tokenizer from v (if it builds), encode a text
 *  with odd bytes in it and decode every id, as ppl and run do. */
void fuzz_use_vocab(const struct fmt_vocab *v);

#endif
