/* cvt_convert.c */
typedef int cvt_placeholder;
