/* Growable byte buffer for building strings and reading files. */
#ifndef PILLION_BASE_BUF_H
#define PILLION_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pl_buf {
	char *data;     /* always NUL-terminated once anything was appended */
	size_t len;
	size_t cap;
} pl_buf;

#define PL_BUF_INIT {NULL, 0, 0}

void pl_buf_free(pl_buf *b);
void pl_buf_reset(pl_buf *b);
/* Appends; aborts on out-of-memory like the arena. */
void pl_buf_append(pl_buf *b, const void *data, size_t len);
void pl_buf_puts(pl_buf *b, const char *s);
void pl_buf_printf(pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a JSON string, quotes included. Valid UTF-8 stays as it is; control bytes, DEL
 * and bytes that are not valid UTF-8 become \u00XX, so the output is valid JSON whatever the input. */
void pl_buf_json_str(pl_buf *b, const char *s, size_t n);
/* Reads a whole file ("-" is stdin) into b; at most max bytes. 0 or -errno (-EFBIG past max). */
int pl_buf_read_file(pl_buf *b, const char *path, size_t max);

#endif
