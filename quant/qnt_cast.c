/* qnt_cast.c */
#include "qnt_cast.h"
