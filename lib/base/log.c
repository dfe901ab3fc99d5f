/* Structured logging to stderr, one JSON object per line. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"

static pl_log_level min_level = PL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pl_log_set_level(pl_log_level level)
{
	min_level = level;
}

int pl_log_set_level_name(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0) {
			min_level = (pl_log_level)i;
			return 0;
		}
	return -1;
}

void pl_log(pl_log_level level, const char *fmt, ...)
{
	char msg[2048], ts[40];
	struct timespec now;
	struct tm tm;
	pl_buf b = PL_BUF_INIT;
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	pl_buf_printf(&b, "{\"level\":\"%s\",\"ts\":\"%s.%03ldZ\",\"msg\":", level_names[level], ts,
		      now.tv_nsec / 1000000);
	pl_buf_json_str(&b, msg, strlen(msg));
	pl_buf_puts(&b, "}\n");
	fwrite(b.data, 1, b.len, stderr);
	pl_buf_free(&b);
}
