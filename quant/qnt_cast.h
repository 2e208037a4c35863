/* qnt_cast.h: exact float casts (placeholder; see issue 2). */
#ifndef QNT_CAST_H
#define QNT_CAST_H
#include <stdint.h>
#endif
