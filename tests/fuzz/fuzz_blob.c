/* fuzz_blob.c: the variable-length and ternary decoders on their own, as the
 * core and convert call them: byte 0 picks sub1 / sub1-qmoe / tern, bytes 1-2
 * rows, 3-4 cols, the rest is the blob. A blob that passes qnt_*_validate is
 * decoded (rows to f32, back to tern bytes) and multiplied (fused matvec,
 * fast and _ref); they must stay inside the blob and the outputs. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "sb_dtype.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 5)
        return 0;
    const int kind = d[0] % 3;
    const size_t rows = 1 + ((size_t)d[1] | (size_t)d[2] << 8) % 512;
    const size_t cols = 1 + ((size_t)d[3] | (size_t)d[4] << 8) % 2048;
    /* the blob in its own allocation, so ASan sees a read past its end */
    const size_t bn = n - 5;
    uint8_t *blob = malloc(bn ? bn : 1);
    memcpy(blob, d + 5, bn);
    float *y = malloc(rows * cols * sizeof *y), *x = malloc(cols * sizeof *x);
    float *mv = malloc(rows * sizeof *mv);
    for (size_t i = 0; i < cols; i++)
        x[i] = (float)((int)(i % 7) - 3) * 0.5f;
    if (kind == 0 && qnt_sub1_validate(blob, bn, rows, cols) == 0) {
        qnt_sub1_dequantize_rows(blob, bn, cols, 0, rows, y);
        qnt_sub1_dequantize_rows(blob, bn, cols, rows / 2, rows - rows / 2, y);
        size_t tb = qnt_tern_row_bytes(cols) * rows;
        uint8_t *t = malloc(tb ? tb : 1);
        qnt_sub1_decode_tern(blob, bn, cols, 0, rows, t);
        free(t);
        qnt_sub1_matvec(blob, bn, rows, cols, x, mv);
        qnt_sub1_matvec_ref(blob, bn, rows, cols, x, mv);
    } else if (kind == 1 && qnt_qmoe_validate(blob, bn, rows, cols) == 0) {
        qnt_qmoe_dequantize_rows(blob, bn, cols, 0, rows, y);
        qnt_qmoe_matvec(blob, bn, rows, cols, x, mv);
    } else if (kind == 2) {
        int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
        uint64_t need;
        if (sb_dtype_nbytes(SB_DTYPE_TERN, shape, 2, NULL, &need) == 0 && need <= bn) {
            qnt_tern_dequantize_rows(blob, cols, 0, rows, y);
            qnt_tern_matvec(blob, rows, cols, x, mv);
        }
    }
    free(mv);
    free(x);
    free(y);
    free(blob);
    return 0;
}
