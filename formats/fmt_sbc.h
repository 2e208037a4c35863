/* fmt_sbc.h: the .subbit container (layout byte by byte: docs/container.md).
 * Readers and writers are reached through fmt_model_open / fmt_writer_open;
 * this header adds the checksum and the structural checks others may reuse. */
#ifndef FMT_SBC_H
#define FMT_SBC_H

#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"

#define FMT_SBC_MAGIC "SUBBIT\0"       /* 7 bytes, then the version byte */
#define FMT_SBC_VERSION 1u
#define FMT_SBC_PROLOGUE 64u           /* bytes before the first tensor */
#define FMT_SBC_ALIGN 64u              /* every tensor's data offset is a multiple */
#define FMT_SBC_MAX_HEADER (256u << 20) /* JSON header size limit */

/*! fmt_sbc_crc32c() : CRC-32C (Castagnoli, reflected 0x82F63B78, init and
 *  final xor 0xFFFFFFFF) of n bytes, continuing from crc (0 to start).
 *  SSE4.2 crc32 instruction when the CPU has it, else a table. */
uint32_t fmt_sbc_crc32c(uint32_t crc, const void *p, size_t n);

/*! fmt_sbc_check_varlen() : structural check of a sub1 / sub1-qmoe blob
 *  header against the tensor's shape (magic, rows, cols); the full check is
 *  quant's qnt_*_validate. @return 0 if it fits, -1 if not. */
int fmt_sbc_check_varlen(enum sb_dtype dt, const void *data, uint64_t nbytes,
                         const int64_t *shape, int ndim);

struct fmt_placed;

/*! fmt_sbc_stored() : what the .subbit writer stores for plan tensor t given
 *  its nbytes of data (checked as fmt_writer_put checks them, path naming the
 *  output in messages): zstd level 3 where that saves 5 %, else the data, with
 *  its CRC-32C, in *pl; *stored points at data or into *zbuf (grown with
 *  sb_realloc to *zcap bytes; the caller sb_frees it). The writer's own put
 *  uses it, and so does a process that writes its tensors of a .subbit at the
 *  offsets fmt_writer_place gives (convert's MPI job), for the same bytes. */
int fmt_sbc_stored(const struct fmt_tensor *t, const void *data, uint64_t nbytes, void **zbuf,
                   size_t *zcap, const void **stored, struct fmt_placed *pl, const char *path,
                   struct sb_err *err);

#endif
