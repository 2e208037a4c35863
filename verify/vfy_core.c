/* vfy_core.c */
typedef int vfy_placeholder;
